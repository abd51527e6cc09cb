defmodule OptunaBridge.Worker do
  @moduledoc """
  One `python -m bridge_worker` process behind an Erlang port: starting it, writing frames,
  receiving frames, and ending it. It knows the framing but nothing of JSON-RPC, so both
  `OptunaBridge.PortOwner` (for `OptunaBridge.Study`) and plain conversation replays (the example
  tests) use it.

  The port is opened with `:exit_status` (a crash is reported as `{port, {:exit_status, n}}`),
  `:binary`, and never `:stderr_to_stdout`: the worker's JSON logs on stderr go to the BEAM's
  stderr and stay off the protocol stream.
  """

  alias OptunaBridge.{Error, Framing}

  defstruct [:port, :os_pid, :framing, buffer: []]

  @type t :: %__MODULE__{
          port: port(),
          os_pid: non_neg_integer() | nil,
          framing: Framing.t(),
          buffer: Framing.buffer()
        }

  @doc """
  The interpreter to run, resolved at run time (nothing about this machine is compiled in):
  `opts[:python]`, else `config :optuna_bridge, :python`, else `$OPTUNA_BRIDGE_PYTHON`, else
  `python3` found on `PATH`. A name without a slash is looked up on `PATH`. `nil` when none is
  found.
  """
  @spec python(keyword()) :: String.t() | nil
  def python(opts) do
    candidate =
      opts[:python] || Application.get_env(:optuna_bridge, :python) ||
        System.get_env("OPTUNA_BRIDGE_PYTHON") || "python3"

    resolve(candidate)
  end

  defp resolve(name) when is_binary(name) do
    if String.contains?(name, "/"), do: Path.expand(name), else: System.find_executable(name)
  end

  defp resolve(other), do: other

  @doc """
  Spawns a worker. Options: `:python`, `:framing` (`:line` default), `:worker_args` (extra
  command-line arguments such as `["--storage", "sqlite:///x.db"]`), `:log_level`
  (`"warning"` default), `:env` (`[{"NAME", "value"}]` added to the worker's environment; a
  `nil` value unsets) and `:cd` (the worker's working directory, e.g. for relative SQLite paths). The caller becomes the port's owner and receives its messages.
  """
  @spec open(keyword()) :: {:ok, t()} | {:error, Error.t()}
  def open(opts) do
    with {:ok, framing} <- Framing.validate(Keyword.get(opts, :framing, :line)),
         {:ok, python} <- executable(python(opts)),
         {:ok, port} <- open_port(python, framing, worker_args(framing, opts), opts) do
      {:os_pid, os_pid} = Port.info(port, :os_pid) || {:os_pid, nil}
      {:ok, %__MODULE__{port: port, os_pid: os_pid, framing: framing}}
    else
      {:error, message} -> {:error, Error.client(:start_failed, message)}
    end
  end

  defp worker_args(framing, opts) do
    ["-m", "bridge_worker", "--framing", Framing.worker_flag(framing)] ++
      ["--log-level", to_string(Keyword.get(opts, :log_level, "warning"))] ++
      Keyword.get(opts, :worker_args, [])
  end

  defp open_port(python, framing, args, opts) do
    port_opts =
      [
        :binary,
        :exit_status,
        :use_stdio,
        :hide,
        Framing.port_option(framing),
        args: args
      ] ++ env_option(opts[:env]) ++ cd_option(opts[:cd])

    {:ok, Port.open({:spawn_executable, python}, port_opts)}
  rescue
    error in ErlangError -> {:error, "cannot start #{python}: #{inspect(error.original)}"}
  end

  defp env_option(nil), do: []

  defp env_option(env) do
    [
      env:
        Enum.map(env, fn {k, v} ->
          {String.to_charlist(to_string(k)), if(v, do: String.to_charlist(v), else: false)}
        end)
    ]
  end

  defp cd_option(nil), do: []
  defp cd_option(dir), do: [cd: String.to_charlist(dir)]

  defp executable(nil),
    do:
      {:error,
       "no Python interpreter: pass python:, set config :optuna_bridge, :python or " <>
         "OPTUNA_BRIDGE_PYTHON, or put python3 on PATH"}

  defp executable(path) do
    cond do
      Path.type(path) != :absolute -> {:error, "python must be an absolute path, got: #{path}"}
      not File.exists?(path) -> {:error, "python executable not found: #{path}"}
      true -> {:ok, path}
    end
  end

  @doc "Writes one JSON text as a frame. `{:error, :closed}` when the port is already gone."
  @spec send_frame(t(), iodata()) :: :ok | {:error, :closed}
  def send_frame(%__MODULE__{port: port, framing: framing}, json) do
    Port.command(port, Framing.encode(framing, json))
    :ok
  rescue
    ArgumentError -> {:error, :closed}
  end

  @doc """
  Feeds one port data message; see `OptunaBridge.Framing.feed/3`.
  """
  @spec feed(t(), Framing.port_data()) :: {:frame, binary(), t()} | {:more, t()}
  def feed(%__MODULE__{} = worker, data) do
    case Framing.feed(worker.framing, worker.buffer, data) do
      {:frame, frame, buffer} -> {:frame, frame, %{worker | buffer: buffer}}
      {:more, buffer} -> {:more, %{worker | buffer: buffer}}
    end
  end

  @doc """
  Blocks (selective receive on this port only) until a whole frame arrives, the worker exits,
  or `timeout` ms pass. Other messages stay in the mailbox.
  """
  @spec receive_frame(t(), timeout()) ::
          {:frame, binary(), t()} | {:exit, integer(), t()} | {:timeout, t()}
  def receive_frame(%__MODULE__{port: port} = worker, timeout) do
    deadline = deadline(timeout)

    receive do
      {^port, {:data, data}} ->
        case feed(worker, data) do
          {:frame, frame, worker} -> {:frame, frame, worker}
          {:more, worker} -> receive_frame(worker, remaining(deadline))
        end

      {^port, {:exit_status, status}} ->
        {:exit, status, worker}
    after
      timeout -> {:timeout, worker}
    end
  end

  @doc false
  @spec deadline(timeout()) :: integer() | :infinity
  def deadline(:infinity), do: :infinity
  def deadline(ms), do: System.monotonic_time(:millisecond) + ms

  @doc false
  @spec remaining(integer() | :infinity) :: timeout()
  def remaining(:infinity), do: :infinity
  def remaining(deadline), do: max(deadline - System.monotonic_time(:millisecond), 0)

  @doc """
  Ends the worker: closes its stdin (it exits 0 on end of input), waits up to `grace` ms for the
  OS process to go, then kills it with SIGKILL. Returns how it ended.
  """
  @spec close(t(), non_neg_integer()) :: :exited | :killed
  def close(%__MODULE__{} = worker, grace) do
    safe_close(worker.port)
    deadline = deadline(grace)

    if wait_gone(worker.os_pid, deadline) do
      :exited
    else
      kill(worker)
      wait_gone(worker.os_pid, deadline(1_000))
      :killed
    end
  end

  @doc "Sends SIGKILL to the worker's OS process."
  @spec kill(t()) :: :ok
  def kill(%__MODULE__{os_pid: os_pid}), do: kill_os_pid(os_pid)

  @doc """
  Sends SIGKILL to an OS pid (nil: nothing). Runs `kill`, so the caller never touches the port:
  it works while the port's owner is suspended on a busy port.
  """
  @spec kill_os_pid(non_neg_integer() | nil) :: :ok
  def kill_os_pid(nil), do: :ok

  def kill_os_pid(os_pid) do
    System.cmd("kill", ["-9", Integer.to_string(os_pid)], stderr_to_stdout: true)
    :ok
  end

  @doc "Whether an OS process with this pid exists (`kill -0`)."
  @spec os_alive?(non_neg_integer() | nil) :: boolean()
  def os_alive?(nil), do: false

  def os_alive?(os_pid) do
    {_, status} = System.cmd("kill", ["-0", Integer.to_string(os_pid)], stderr_to_stdout: true)
    status == 0
  end

  defp safe_close(port) do
    Port.close(port)
  rescue
    ArgumentError -> :ok
  end

  defp wait_gone(os_pid, deadline) do
    cond do
      not os_alive?(os_pid) -> true
      remaining(deadline) == 0 -> false
      true -> sleep_then(20, fn -> wait_gone(os_pid, deadline) end)
    end
  end

  defp sleep_then(ms, fun) do
    Process.sleep(ms)
    fun.()
  end
end
