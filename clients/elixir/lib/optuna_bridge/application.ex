defmodule OptunaBridge.Application do
  @moduledoc """
  The `:optuna_bridge` OTP application. It starts no studies itself: each
  `OptunaBridge.Study` belongs in the supervision tree of the application that uses it (for
  instance under a `DynamicSupervisor`, see the README), so its lifetime follows that
  application's. The empty supervisor is kept so the library has a place for shared processes.
  """

  use Application

  @impl true
  def start(_type, _args) do
    Supervisor.start_link([], strategy: :one_for_one, name: OptunaBridge.Supervisor)
  end
end
