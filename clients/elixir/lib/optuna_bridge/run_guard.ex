defmodule OptunaBridge.RunGuard do
  @moduledoc """
  The companion process of one `OptunaBridge.optimize/3` run: it ties the run's objective tasks
  to the process that called `optimize/3`, and keeps their leases alive.

  Why a separate process: the tasks are `Task.Supervisor.async_nolink/2` children (an objective's
  crash must not take the caller down), so nothing links them to the caller. If the caller exits
  (a killed LiveView, a cancelled job), this process, which monitors it, kills the running tasks
  and tells their trials `fail` (user attr `"fail_reason"`), so none is left RUNNING.

  With `ask: [lease_s: s]` every running trial's lease is renewed every `s / 3` seconds while its
  objective runs, so a slow objective keeps its trial; a trial whose caller and guard are both
  gone (the BEAM was killed) is failed by the worker when its lease ends.
  """

  require Logger

  alias OptunaBridge.Study

  @doc "Starts the guard of a run by the calling process on `study`."
  @spec start(GenServer.server(), pos_integer() | nil) :: pid()
  def start(study, lease_ms) do
    caller = self()
    spawn(fn -> init(caller, study, lease_ms) end)
  end

  @doc "A task of the run started on trial `number`."
  @spec started(pid(), pid(), non_neg_integer()) :: :ok
  def started(guard, task, number) do
    send(guard, {:started, task, number})
    :ok
  end

  @doc "The task's trial is finished (told by the run)."
  @spec finished(pid(), pid()) :: :ok
  def finished(guard, task) do
    send(guard, {:finished, task})
    :ok
  end

  @doc "The run is over: the guard ends."
  @spec stop(pid()) :: :ok
  def stop(guard) do
    send(guard, :stop)
    :ok
  end

  defp init(caller, study, lease_ms) do
    ref = Process.monitor(caller)
    if lease_ms, do: Process.send_after(self(), :renew, renew_every(lease_ms))
    loop(%{caller: ref, study: study, lease_ms: lease_ms, running: %{}})
  end

  defp renew_every(lease_ms), do: max(div(lease_ms, 3), 1)

  defp loop(state) do
    receive do
      {:started, task, number} ->
        loop(%{state | running: Map.put(state.running, task, number)})

      {:finished, task} ->
        loop(%{state | running: Map.delete(state.running, task)})

      :renew ->
        renew(state)
        Process.send_after(self(), :renew, renew_every(state.lease_ms))
        loop(state)

      {:DOWN, ref, :process, _, reason} when ref == state.caller ->
        abandon(state, reason)

      :stop ->
        :ok
    end
  end

  defp renew(state) do
    Enum.each(state.running, fn {_task, number} ->
      case Study.renew(state.study, number, timeout: state.lease_ms) do
        {:ok, _} -> :ok
        {:error, e} -> Logger.debug("optimize: renewing trial #{number}: #{e.message}")
      end
    end)
  end

  # The reason is logged before the tells: it is said even if a tell then waits out its deadline
  # (and a test that waits for the trials to be failed finds the line already written).
  defp abandon(state, reason) do
    why = String.slice("the caller of optimize/3 exited: " <> inspect(reason), 0, 2_000)

    if state.running != %{},
      do: Logger.warning("optimize: #{why}; telling its #{map_size(state.running)} trial(s) fail")

    Enum.each(state.running, fn {task, number} ->
      Process.exit(task, :kill)
      attrs = %{"fail_reason" => why}

      case Study.tell(state.study, number, nil, state: :fail, user_attrs: attrs) do
        {:ok, _} -> :ok
        {:error, e} -> Logger.warning("optimize: failing trial #{number}: #{e.message}")
      end
    end)
  end
end
