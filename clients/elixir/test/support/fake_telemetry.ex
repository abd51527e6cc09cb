# A stand-in for the `:telemetry` application, compiled for the tests only and only when the real
# one is absent (Hex, which ships it, is unreachable where this client is tested). It keeps the
# handful of functions the client and its tests call (attach, detach, execute: the client's own
# spans are built on execute by OptunaBridge.Telemetry), with the same signatures, so the tests
# prove what the client emits, not how `:telemetry` dispatches.
unless Code.ensure_loaded?(:telemetry) do
  defmodule :telemetry do
    @moduledoc false

    def attach(id, event, fun, config), do: attach_many(id, [event], fun, config)

    def attach_many(id, events, fun, config) do
      handlers = :persistent_term.get({__MODULE__, :handlers}, %{})
      :persistent_term.put({__MODULE__, :handlers}, Map.put(handlers, id, {events, fun, config}))
      :ok
    end

    def detach(id) do
      handlers = :persistent_term.get({__MODULE__, :handlers}, %{})
      :persistent_term.put({__MODULE__, :handlers}, Map.delete(handlers, id))
      :ok
    end

    def execute(event, measurements, metadata) do
      for {id, {events, fun, config}} <- :persistent_term.get({__MODULE__, :handlers}, %{}),
          event in events,
          do: fun.(event, measurements, metadata, config) && id

      :ok
    end
  end
end
