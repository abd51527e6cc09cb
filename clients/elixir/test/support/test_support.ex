defmodule OptunaBridge.TestSupport do
  @moduledoc """
  Helpers shared by the tests (one place, instead of a copy per test file): where the protocol's
  example conversations and schema are, waiting for a condition, starting a study and running
  trials on it, killing its worker, and the worker arguments of a storage.
  """

  import ExUnit.Assertions
  import ExUnit.Callbacks, only: [start_supervised!: 2]

  alias OptunaBridge.{Study, Worker}

  @examples_dir Path.expand("../../../../protocol/examples", __DIR__)

  @doc "The repository's `protocol/examples/` directory, shared with the worker's own tests."
  @spec examples_dir() :: String.t()
  def examples_dir, do: @examples_dir

  @doc "The protocol's JSON Schema (`protocol/schema/`, written by `make schema`), decoded."
  @spec protocol_schema() :: map()
  def protocol_schema do
    Path.join([@examples_dir, "..", "schema", "optuna-bridge.schema.json"])
    |> File.read!()
    |> OptunaBridge.JSON.decode!()
  end

  @doc "Every `*.jsonl` file there."
  @spec example_files() :: [String.t()]
  def example_files, do: Path.wildcard(Path.join(@examples_dir, "*.jsonl")) |> Enum.sort()

  @doc "The files that are conversations (each line has `send` or `send_raw` and `expect`)."
  @spec conversation_files() :: [String.t()]
  def conversation_files do
    Enum.filter(example_files(), fn file ->
      file |> File.stream!() |> Enum.take(1) |> Enum.all?(&String.contains?(&1, "\"expect\""))
    end)
  end

  @doc """
  Polls `fun` every 20 ms until it returns a truthy value (returned) or `timeout` ms pass.

  The default is generous (a minute): it bounds a hang, it is not a speed measurement, and a
  worker restart on a machine whose every core is busy takes several seconds.
  """
  @spec wait_until((() -> term()), non_neg_integer()) :: term()
  def wait_until(fun, timeout \\ 60_000) do
    deadline = System.monotonic_time(:millisecond) + timeout
    do_wait(fun, deadline)
  end

  defp do_wait(fun, deadline) do
    cond do
      value = fun.() ->
        value

      System.monotonic_time(:millisecond) > deadline ->
        raise ExUnit.AssertionError, message: "condition not met in time"

      true ->
        Process.sleep(20)
        do_wait(fun, deadline)
    end
  end

  @doc "Sends a signal (`\"STOP\"`, `\"CONT\"`, `\"KILL\"`) to an OS process."
  @spec signal(non_neg_integer(), String.t()) :: :ok
  def signal(os_pid, sig) do
    {_, 0} = System.cmd("kill", ["-#{sig}", Integer.to_string(os_pid)])
    :ok
  end

  @doc """
  Starts a study under the test's supervisor (stopped when the test ends) and waits until it
  is ready. `child` is given to `start_supervised!/2` (`id:`, `restart:`).
  """
  @spec start_study!(map(), map(), keyword(), keyword()) :: pid()
  def start_study!(config, space, opts \\ [], child \\ []) do
    study = start_supervised!({Study, {config, space, opts}}, child)
    :ok = Study.await_ready(study)
    study
  end

  @doc "Runs `n` trials one by one: each asked, then told `objective.(params)`."
  @spec run_trials(Study.study(), pos_integer(), (map() -> number())) :: :ok
  def run_trials(study, n, objective) do
    for _ <- 1..n do
      {:ok, [%{number: number, params: params}]} = Study.ask(study)
      {:ok, _} = Study.tell(study, number, objective.(params))
    end

    :ok
  end

  @doc """
  Kills the study's worker with SIGKILL and waits until a new one is ready (the old one gone):
  the study's `info/1` then.
  """
  @spec kill_worker_and_wait(Study.study()) :: map()
  def kill_worker_and_wait(study) do
    %{os_pid: old} = Study.info(study)
    signal(old, "KILL")

    wait_until(fn ->
      info = Study.info(study)
      info.status == :ready and info.os_pid != old
    end)

    refute Worker.os_alive?(old)
    Study.info(study)
  end

  @doc "The study's trials counted by state: `%{complete: 3, fail: 1}`."
  @spec count_by_state(Study.study()) :: %{atom() => pos_integer()}
  def count_by_state(study) do
    {:ok, trials} = Study.trials(study)
    Enum.frequencies_by(trials, & &1.state)
  end

  @doc "`worker_args:` of a worker on this storage: `:memory`, or `:sqlite` in `dir`/`file`."
  @spec storage_args(:memory | :sqlite, Path.t() | nil, String.t()) :: [String.t()]
  def storage_args(:memory, _dir, _file), do: []
  def storage_args(:sqlite, dir, file), do: ["--storage", "sqlite:///" <> Path.join(dir, file)]

  @doc "nil for an empty list (so `wait_until/2` goes on waiting), else the list."
  @spec nonempty(list()) :: list() | nil
  def nonempty([]), do: nil
  def nonempty(list), do: list
end
