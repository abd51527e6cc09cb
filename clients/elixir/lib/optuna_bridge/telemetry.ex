defmodule OptunaBridge.Telemetry do
  @moduledoc """
  `:telemetry` events, emitted only when the `:telemetry` application is present: the client has
  no required Hex dependency (add `{:telemetry, "~> 1.0"}` to your own deps to receive them).

  Whether `:telemetry` is there is decided once, when the `:optuna_bridge` application starts
  (`setup/0`), and kept in a `:persistent_term`: no call pays for a code-path lookup.

  Every event's metadata carries `study`, the study's name (the one identifier of a study: the
  `name` given to `OptunaBridge.Study.start_link/3`). Times are in `:native` units
  (`System.convert_time_unit/3`). The README's "Telemetry" table lists the events;
  test/optuna_bridge/telemetry_test.exs checks it against what the client emits.

    * `[:optuna_bridge, :request, :start | :stop]` — around every call to a study (`ask`,
      `tell`, `trials`, ...), in the caller's process. Measurements: `:start` `system_time`,
      `monotonic_time`; `:stop` `duration`, `monotonic_time` and `queue_time` (from the study
      receiving the call to writing its frame to the worker; absent when no frame was written).
      Metadata: `study`, `method`; `:stop` adds `result` (`:ok` or `{:error, kind}`). A call
      never raises inside the span (failures are results), so there is no `:exception`.
    * `[:optuna_bridge, :trial, :start | :stop | :exception]` — around each objective run by
      `OptunaBridge.optimize/3`, in the objective's task. Metadata: `study`, `number`, `params`;
      `:stop` adds `state` (`:complete`, `:pruned` or `:fail`). Measurements as for requests
      (no `queue_time`).
    * `[:optuna_bridge, :checkpoint, :stop]` — an in-memory study's snapshot came back from the
      worker. Measurements `duration` (export request to snapshot); metadata `study`.
    * `[:optuna_bridge, :worker, :start]` — a study's worker announced `ready`. Measurements
      `duration` (spawn to `ready`); metadata `study`, `os_pid`, `protocol`, `worker` (version).
    * `[:optuna_bridge, :worker, :exit]` — a study's worker exited. Measurements `%{count: 1}`;
      metadata `study`, `os_pid`, `reason`.
    * `[:optuna_bridge, :worker, :restart]` — a study spawns a replacement worker. Measurements
      `%{count: 1}`; metadata `study`, `restarts` (so far).
    * `[:optuna_bridge, :study, :stopped]` — `OptunaBridge.optimize/3` met a stop rule of the
      study (`OptunaBridge.StopRules`). Measurements `%{count: 1}`; metadata `study`, `rule`,
      `detail`.
  """

  @key {__MODULE__, :enabled}

  @doc """
  Decides, once, whether events are emitted (called when the application starts; call it again
  after loading `:telemetry` by hand). Returns the decision.
  """
  @spec setup() :: boolean()
  def setup do
    enabled = Code.ensure_loaded?(:telemetry) and function_exported?(:telemetry, :execute, 3)
    :persistent_term.put(@key, enabled)
    enabled
  end

  @doc "Whether events are emitted (see `setup/0`)."
  @spec enabled?() :: boolean()
  def enabled? do
    case :persistent_term.get(@key, nil) do
      nil -> setup()
      enabled -> enabled
    end
  end

  @doc """
  Runs `fun` inside a `prefix ++ [:start | :stop | :exception]` span when enabled. `fun` returns
  `{result, extra_stop_measurements, extra_stop_metadata}`; `result` is returned. `metadata` may
  be a function, called only when enabled (so it costs nothing otherwise).
  """
  @spec span([atom()], map() | (() -> map()), (() -> {term(), map(), map()})) :: term()
  def span(prefix, metadata, fun) do
    cond do
      not enabled?() -> elem(fun.(), 0)
      is_function(metadata, 0) -> emit_span(prefix, metadata.(), fun)
      true -> emit_span(prefix, metadata, fun)
    end
  end

  defp emit_span(prefix, metadata, fun) do
    start = System.monotonic_time()

    execute(
      prefix ++ [:start],
      %{system_time: System.system_time(), monotonic_time: start},
      metadata
    )

    try do
      fun.()
    catch
      kind, reason ->
        stop = System.monotonic_time()

        execute(
          prefix ++ [:exception],
          %{duration: stop - start, monotonic_time: stop},
          Map.merge(metadata, %{kind: kind, reason: reason, stacktrace: __STACKTRACE__})
        )

        :erlang.raise(kind, reason, __STACKTRACE__)
    else
      {result, measurements, extra} ->
        stop = System.monotonic_time()
        measurements = Map.merge(%{duration: stop - start, monotonic_time: stop}, measurements)
        execute(prefix ++ [:stop], measurements, Map.merge(metadata, extra))
        result
    end
  end

  @doc "Emits one event when enabled."
  @spec execute([atom()], map(), map()) :: :ok
  def execute(event, measurements, metadata) do
    if enabled?(), do: apply(:telemetry, :execute, [event, measurements, metadata])
    :ok
  end
end
