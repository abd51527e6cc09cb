defmodule OptunaBridge.Application do
  @moduledoc """
  The `:optuna_bridge` OTP application. It starts no studies itself: each
  `OptunaBridge.Study` belongs in the supervision tree of the application that uses it (for
  instance under a `DynamicSupervisor`, see the README), so its lifetime follows that
  application's. It supervises the shared processes: `OptunaBridge.TaskSupervisor`, under which
  `OptunaBridge.optimize/3` runs objectives.
  """

  use Application

  @impl true
  def start(_type, _args) do
    OptunaBridge.Telemetry.setup()
    children = [{Task.Supervisor, name: OptunaBridge.TaskSupervisor}]
    Supervisor.start_link(children, strategy: :one_for_one, name: OptunaBridge.Supervisor)
  end
end
