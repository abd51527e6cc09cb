defmodule OptunaBridge.Telemetry do
  @moduledoc """
  `:telemetry` events, emitted only when the `:telemetry` application is present: the client
  has no required Hex dependency, so it calls `:telemetry` only after checking that the module
  is loaded (add `{:telemetry, "~> 1.0"}` to your own deps to receive them).

  Events:

    * `[:optuna_bridge, :request, :start | :stop | :exception]` — a span around every call to a
      study (`ask`, `tell`, `trials`, ...), in the caller's process, as `:telemetry.span/3`
      makes it. Metadata: `study` (the server as given: pid or name), `method` (the protocol
      method); `:stop` adds `result` (`:ok` or `{:error, kind}`).
    * `[:optuna_bridge, :worker, :exit]` — a study's worker exited. Measurements `%{count: 1}`;
      metadata `study` (name), `os_pid`, `reason`.
    * `[:optuna_bridge, :worker, :restart]` — a study spawns a replacement worker. Measurements
      `%{count: 1}`; metadata `study`, `restarts` (so far).
    * `[:optuna_bridge, :study, :stopped]` — `OptunaBridge.optimize/3` met a stop rule of the
      study (`OptunaBridge.StopRules`). Measurements `%{count: 1}`; metadata `study`, `rule`,
      `detail`.
  """

  @doc "Whether `:telemetry` is loaded (so events are emitted)."
  @spec enabled?() :: boolean()
  def enabled?, do: Code.ensure_loaded?(:telemetry) and function_exported?(:telemetry, :span, 3)

  @doc "Runs `fun` (returning `{result, extra_stop_metadata}`) inside a span when enabled."
  @spec span([atom()], map(), (() -> {term(), map()})) :: term()
  def span(event, metadata, fun) do
    if enabled?() do
      apply(:telemetry, :span, [
        event,
        metadata,
        fn ->
          {result, extra} = fun.()
          {result, Map.merge(metadata, extra)}
        end
      ])
    else
      {result, _extra} = fun.()
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
