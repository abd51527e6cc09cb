defmodule OptunaBridge.Study.Restart do
  @moduledoc false
  # A worker's life as the study process sees it: spawning one (own port owner, or an attachment
  # to a shared worker), a start that fails (final before the study ever existed, else retried),
  # a worker that exits (callers failed at once, a restart scheduled with exponential backoff
  # within the restart budget), and ending one (`Worker.stop_os_process/2`).

  require Logger

  alias OptunaBridge.{Error, Outbox, PortOwner, SharedWorker, Telemetry, Worker}
  alias OptunaBridge.Study.Server

  def spawn_worker(state) do
    gen = state.gen + 1
    owner = start_owner(state.opts[:shared], state.opts)
    timer = Process.send_after(self(), {:start_timeout, gen}, state.start_timeout)

    %{
      Map.put(state, :spawned_at, Server.now_native())
      | owner: owner,
        os_pid: nil,
        gen: gen,
        status: :starting,
        ready: nil,
        start_timer: timer,
        outbox: Outbox.new(),
        pending: %{}
    }
  end

  def start_owner(nil, opts), do: PortOwner.start_link(opts)

  def start_owner({OptunaBridge.Pool, pool, name}, _),
    do: SharedWorker.attach(OptunaBridge.Pool.worker(pool, name))

  def start_owner(shared, _opts), do: SharedWorker.attach(shared)

  # The very first start failed: the configuration or the environment is wrong; restarting
  # would fail the same way. Later starts count against the restart budget.
  # Before the study ever existed, an error that the same configuration would meet again (a bad
  # search space, an existing name, no interpreter, a worker that cannot start) is final: the
  # process stops with {:shutdown, {:start_failed, error}}, which a :transient supervisor does not
  # restart. Anything else (a storage error, a crash) is retried within the restart budget.
  @final_start_kinds [
    :invalid_params,
    :invalid_request,
    :study_exists,
    :limit_exceeded,
    :missing_dependency,
    :snapshot_invalid,
    :start_failed
  ]

  def start_failed(%{established: false} = state, %Error{kind: kind} = error)
      when kind in @final_start_kinds do
    Server.fail_all(state, error)
    {:stop, {:shutdown, {:start_failed, error}}, %{state | calls: %{}, queue: :queue.new()}}
  end

  def start_failed(state, error) do
    Logger.error("optuna_bridge study #{inspect(state.study)}: restart failed: #{error.message}")
    schedule_restart(%{state | owner: nil, os_pid: nil}, error)
  end

  def worker_gone(state, message, data) do
    Telemetry.execute([:optuna_bridge, :worker, :exit], %{count: 1}, %{
      study: state.study,
      os_pid: state.os_pid,
      reason: message
    })

    Logger.error("optuna_bridge study #{inspect(state.study)}: #{message}; restarting the worker")
    error = Error.client(:worker_crashed, message, data)
    state = Server.fail_pending(state, error)

    if state.status in [:starting, :establishing] and not state.established do
      start_failed(state, Error.client(:start_failed, message, data))
    else
      state = collect_unsettled(%{state | owner: nil, os_pid: nil})
      schedule_restart(state, error)
    end
  end

  # Tells the dead worker may not have processed stay in the trial ledger for reconciliation.
  def collect_unsettled(state), do: %{state | outbox: Outbox.new()}

  def schedule_restart(state, error) do
    now = System.monotonic_time(:millisecond)
    recent = [now | Enum.filter(state.restart_times, &(&1 > now - state.restart_window))]

    if length(recent) > state.max_restarts do
      Server.fail_all(state, error)
      {:stop, {:worker_restart_limit, error}, %{state | calls: %{}, queue: :queue.new()}}
    else
      delay = min(state.restart_backoff * Integer.pow(2, length(recent) - 1), 10_000)
      Process.send_after(self(), :restart, delay)

      {:noreply,
       %{
         state
         | status: :restarting,
           restarts: state.restarts + 1,
           restart_times: recent,
           last_exit: error
       }}
    end
  end

  # On a shared worker only this study's attachment goes: the other studies keep the worker.
  def kill_worker(%{owner: owner} = state) when owner != nil and state.shared do
    Process.exit(owner, :kill)
    :ok
  end

  def kill_worker(%{os_pid: os_pid, owner: owner}) do
    Worker.kill_os_pid(os_pid)
    if owner, do: Process.exit(owner, :kill)
    :ok
  end

  def close_worker(%{owner: nil}), do: :ok

  def close_worker(%{shared: true} = state) do
    PortOwner.close(state.owner)
    :ok
  end

  def close_worker(state) do
    os_pid = state.os_pid || opened_pid(state.owner)

    Worker.stop_os_process(os_pid,
      close: fn -> PortOwner.close(state.owner) end,
      grace: state.grace
    )

    Process.exit(state.owner, :kill)
    :ok
  end

  # The owner's `{:opened, os_pid}` may still be in the mailbox when the study stops early.
  def opened_pid(owner) do
    receive do
      {:worker, ^owner, {:opened, os_pid}} -> os_pid
    after
      0 -> nil
    end
  end
end
