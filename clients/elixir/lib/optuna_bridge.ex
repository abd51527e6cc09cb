defmodule OptunaBridge do
  @moduledoc """
  An Elixir client for the optuna-bridge worker: Optuna studies served by a Python process over
  a port, with JSON-RPC 2.0 frames (see `protocol/PROTOCOL.md` in the repository).

    * `OptunaBridge.Study` — a GenServer owning one worker for one study (the API to use).
    * `OptunaBridge.Error` — the errors it returns, with a `kind` atom to match on.
    * `OptunaBridge.JSON` — the dependency-free JSON codec.
    * `OptunaBridge.Worker`, `OptunaBridge.Framing`, `OptunaBridge.RPC`, `OptunaBridge.Wire` —
      the port, the framing, the JSON-RPC frames and the value translation underneath.
  """
end
