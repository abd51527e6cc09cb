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

  defstruct [:port, :os_pid, :framing, :log_port, :fifo, buffer: []]

  @type t :: %__MODULE__{
          port: port(),
          os_pid: non_neg_integer() | nil,
          framing: Framing.t(),
          log_port: port() | nil,
          fifo: String.t() | nil,
          buffer: Framing.buffer()
        }

  @doc """
  The interpreter to run, resolved at run time (nothing about this machine is compiled in):
  `opts[:python]`, else `config :optuna_bridge, :python`, else `$OPTUNA_BRIDGE_PYTHON`, else the
  venv of `mix optuna_bridge.install` (see `OptunaBridge.Python.venv_python/1`), else `python3`
  found on `PATH`. A name without a slash is looked up on `PATH`. `nil` when none is found.
  """
  @spec python(keyword()) :: String.t() | nil
  def python(opts) do
    candidate =
      opts[:python] || Application.get_env(:optuna_bridge, :python) ||
        System.get_env("OPTUNA_BRIDGE_PYTHON") || OptunaBridge.Python.venv_python(opts) ||
        "python3"

    resolve(candidate)
  end

  @doc "The interpreter to run (`python/1`), checked: `{:ok, path}` or `{:error, why}`."
  @spec interpreter(keyword()) :: {:ok, String.t()} | {:error, String.t()}
  def interpreter(opts), do: executable(python(opts))

  defp resolve(name) when is_binary(name) do
    if String.contains?(name, "/"), do: Path.expand(name), else: System.find_executable(name)
  end

  defp resolve(other), do: other

  @doc """
  Spawns a worker. Options: `:python`, `:framing` (`:line` default), `:worker_args` (extra
  command-line arguments such as `["--storage", "sqlite:///x.db"]`), `:log_level`
  (`"warning"` default), `:forward_logs` (default false: the worker's stderr goes to the BEAM's
  stderr; true: its JSON log lines are read through a FIFO and logged with `Logger` at their
  level, see `log_line/2`), `:env` (`[{"NAME", "value"}]` added to the worker's environment; a
  `nil` value unsets) and `:cd` (the worker's working directory, e.g. for relative SQLite paths). The caller becomes the port's owner and receives its messages.
  """
  @spec open(keyword()) :: {:ok, t()} | {:error, Error.t()}
  def open(opts) do
    with {:ok, framing} <- Framing.validate(Keyword.get(opts, :framing, :line)),
         {:ok, python} <- executable(python(opts)),
         {:ok, fifo, log_port} <- log_reader(opts[:forward_logs]),
         {:ok, port} <- open_port(python, framing, worker_args(framing, opts), opts, fifo) do
      {:os_pid, os_pid} = Port.info(port, :os_pid) || {:os_pid, nil}

      {:ok,
       %__MODULE__{port: port, os_pid: os_pid, framing: framing, log_port: log_port, fifo: fifo}}
    else
      {:error, message} -> {:error, Error.client(:start_failed, message)}
    end
  end

  defp worker_args(framing, opts) do
    ["-m", "bridge_worker", "--framing", Framing.worker_flag(framing)] ++
      ["--log-level", to_string(Keyword.get(opts, :log_level, "warning"))] ++
      Keyword.get(opts, :worker_args, [])
  end

  # stderr forwarding: the worker runs as `sh -c 'exec python ... 2>FIFO'` (exec: same pid) and a
  # `cat FIFO` port, owned by the same process, hands its lines over.
  defp log_reader(true) do
    remove_stale_fifos(System.tmp_dir!())
    fifo = fifo_path(System.tmp_dir!())

    with {_, 0} <- System.cmd("mkfifo", ["-m", "600", fifo], stderr_to_stdout: true),
         cat when is_binary(cat) <- System.find_executable("cat") do
      port =
        Port.open({:spawn_executable, cat}, [:binary, :exit_status, {:line, 65_536}, args: [fifo]])

      {:ok, fifo, port}
    else
      _ -> {:error, "cannot make a FIFO for the worker's logs (forward_logs: true)"}
    end
  end

  defp log_reader(_), do: {:ok, nil, nil}

  @fifo_prefix "optuna_bridge_"

  @doc false
  # A FIFO name no other VM can make: this VM's OS pid (unique among live VMs), a random part
  # (a killed VM's pid may be reused) and a counter (unique in this VM).
  @spec fifo_path(String.t()) :: String.t()
  def fifo_path(dir) do
    token = Integer.to_string(:rand.uniform(0xFFFFFFFF), 16) |> String.downcase()
    name = "#{@fifo_prefix}#{System.pid()}_#{token}_#{System.unique_integer([:positive])}.log"
    Path.join(dir, name)
  end

  @doc false
  # FIFOs a killed VM left (it never reached its own clean-up): ours by name, a FIFO, and their
  # VM's OS pid no longer running. A live VM's FIFOs and any other file are never touched.
  @spec remove_stale_fifos(String.t()) :: :ok
  def remove_stale_fifos(dir) do
    for path <- Path.wildcard(Path.join(dir, @fifo_prefix <> "*_*_*.log")),
        [_, pid] <- [
          Regex.run(~r/^#{@fifo_prefix}(\d+)_[0-9a-f]+_\d+\.log$/, Path.basename(path))
        ],
        pid != System.pid() and not os_alive?(String.to_integer(pid)),
        match?({:ok, %File.Stat{type: :other}}, File.lstat(path)) do
      File.rm(path)
    end

    :ok
  end

  defp open_port(python, framing, args, opts, nil), do: open_port(python, framing, args, opts)

  defp open_port(python, framing, args, opts, fifo) do
    script = ~s(f="$1"; shift; exec "$@" 2>"$f")
    open_port("/bin/sh", framing, ["-c", script, "sh", fifo, python | args], opts)
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
       "no Python interpreter: " <>
         OptunaBridge.Python.install_hint() <>
         ", or pass python:, set config :optuna_bridge, :python or OPTUNA_BRIDGE_PYTHON"}

  defp executable(path) do
    cond do
      Path.type(path) != :absolute -> {:error, "python must be an absolute path, got: #{path}"}
      not File.exists?(path) -> {:error, "python executable not found: #{path}; #{hint()}"}
      true -> {:ok, path}
    end
  end

  defp hint, do: OptunaBridge.Python.install_hint()

  @levels %{
    "debug" => :debug,
    "info" => :info,
    "warning" => :warning,
    "error" => :error,
    "critical" => :critical,
    "exception" => :error
  }

  @doc """
  Logs one stderr line of the worker with `Logger`: a JSON log line at its `level` (debug, info,
  warning, error, critical), its `event` and other fields in the message; anything else (a
  Python crash before logging was set up) at `:warning`. Metadata: `os_pid`, `source: :worker`
  (field names are never turned into atoms).
  """
  @spec log_line(binary(), non_neg_integer() | nil) :: :ok
  def log_line(line, os_pid) do
    {level, message} =
      case OptunaBridge.JSON.decode(line) do
        {:ok, %{} = fields} ->
          {level, fields} = Map.pop(fields, "level")
          {event, fields} = Map.pop(fields, "event", "")
          fields = Map.delete(fields, "timestamp")

          details =
            fields |> Enum.sort() |> Enum.map_join(" ", fn {k, v} -> "#{k}=#{inspect(v)}" end)

          {Map.get(@levels, level, :warning), String.trim("worker: #{event} #{details}")}

        _ ->
          {:warning, "worker: " <> line}
      end

    require Logger
    Logger.log(level, message, os_pid: os_pid, source: :worker)
  end

  @doc false
  @spec remove_fifo(t()) :: :ok
  def remove_fifo(%__MODULE__{fifo: nil}), do: :ok

  def remove_fifo(%__MODULE__{fifo: fifo}) do
    _ = File.rm(fifo)
    :ok
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
  def close(%__MODULE__{} = worker, grace),
    do: stop_os_process(worker.os_pid, close: fn -> safe_close(worker.port) end, grace: grace)

  @doc """
  The one way a worker's OS process is ended: `close:` (a function that closes its stdin, so it
  exits 0 at the end of its input), then up to `grace:` ms (default 2 s) for the process to go,
  then SIGKILL and up to 1 s more. Returns how it ended; a nil pid (never opened) is `:exited`.
  Used by `close/2`, `OptunaBridge.SharedWorker` and the study process.
  """
  @spec stop_os_process(non_neg_integer() | nil, keyword()) :: :exited | :killed
  def stop_os_process(os_pid, opts) do
    Keyword.get(opts, :close, fn -> :ok end).()

    if wait_gone(os_pid, deadline(Keyword.get(opts, :grace, 2_000))) do
      :exited
    else
      kill_os_pid(os_pid)
      wait_gone(os_pid, deadline(1_000))
      :killed
    end
  end

  @doc "Sends SIGKILL to the worker's OS process."
  @spec kill(t()) :: :ok
  def kill(%__MODULE__{os_pid: os_pid}), do: kill_os_pid(os_pid)

  @doc """
  Sends SIGKILL to an OS pid (nil: nothing). Runs `kill` once, so the caller never touches the
  port: it works while the port's owner is suspended on a busy port. Without a `kill` on `PATH`
  nothing is sent (logged): the worker still ends on its own, at the end of its stdin or when it
  sees its parent gone.
  """
  @spec kill_os_pid(non_neg_integer() | nil) :: :ok
  def kill_os_pid(nil), do: :ok

  def kill_os_pid(os_pid) do
    case System.find_executable("kill") do
      nil ->
        require Logger
        Logger.warning("optuna_bridge: no kill on PATH; worker #{os_pid} ends on its own")

      kill ->
        System.cmd(kill, ["-9", Integer.to_string(os_pid)], stderr_to_stdout: true)
    end

    :ok
  end

  @doc """
  Whether an OS process with this pid exists and is not a zombie. Read from `/proc` (no process
  is forked: stopping a worker polls this); `kill -0` where there is no `/proc`.
  """
  @spec os_alive?(non_neg_integer() | nil) :: boolean()
  def os_alive?(nil), do: false

  def os_alive?(os_pid) do
    case File.read("/proc/#{os_pid}/stat") do
      {:ok, stat} ->
        # "pid (comm) S ...": the state follows the last ")" (comm may hold parentheses)
        state = stat |> String.split(")") |> List.last() |> String.trim_leading()
        not String.starts_with?(state, ["Z", "X"])

      {:error, _} ->
        if File.dir?("/proc/self"), do: false, else: kill_zero(os_pid)
    end
  end

  defp kill_zero(os_pid) do
    case System.find_executable("kill") do
      nil ->
        false

      kill ->
        {_, status} = System.cmd(kill, ["-0", Integer.to_string(os_pid)], stderr_to_stdout: true)
        status == 0
    end
  end

  @doc false
  # Closing a port that is already closed (its owner saw it exit) is not an error.
  @spec safe_close(port()) :: :ok
  def safe_close(port) do
    Port.close(port)
    :ok
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
