defmodule OptunaBridge.Study.Establish do
  @moduledoc false
  # Bringing a fresh worker to the study: on its `ready` notification the study is created (or
  # imported from the last checkpoint), then, after a restart, the trials this process handed
  # out are reconciled with the new worker and its numbering is moved past lost numbers
  # (`OptunaBridge.Study.Session` decides what; this module sends the frames). Then queued calls run.

  require Logger

  alias OptunaBridge.{Error, JSON, Telemetry, TrialLedger}
  alias OptunaBridge.Study.{Frames, Restart, Server, Session}

  @protocol OptunaBridge.Python.protocol()

  # A deleted study stays deleted: the new worker is not asked to create or import it.
  def on_ready(%{deleted: true} = state, %{"protocol" => @protocol} = ready),
    do: become_ready(%{state | ready: ready, max_frame: ready["max_frame_bytes"]})

  def on_ready(state, %{"protocol" => @protocol} = ready) do
    Telemetry.execute(
      [:optuna_bridge, :worker, :start],
      %{duration: Server.now_native() - Map.get(state, :spawned_at, Server.now_native())},
      %{study: state.study, os_pid: state.os_pid, protocol: @protocol, worker: ready["worker"]}
    )

    state = %{state | ready: ready, max_frame: ready["max_frame_bytes"], status: :establishing}
    {method, params} = Session.establish_request(state)
    setup_request(state, method, params, :establish)
  end

  def on_ready(state, ready) do
    Restart.kill_worker(state)

    error = Error.client(:start_failed, OptunaBridge.Python.mismatch(ready), ready)

    elem_state(Restart.start_failed(%{state | owner: nil, os_pid: nil}, error))
  end

  # start_failed/schedule_restart return GenServer tuples; frames are handled in pipelines.
  def elem_state({:noreply, state}), do: state
  def elem_state({:stop, reason, state}), do: throw({:stop, reason, state})

  def setup_request(state, method, params, step) do
    json =
      case params do
        {:raw, json} -> json
        map -> JSON.encode!(map)
      end

    case Frames.send_request(state, method, json, {:setup, step}) do
      {:ok, state} -> state
      {:error, error, state} -> elem_state(Restart.start_failed(state, error))
    end
  end

  def setup_reply(%{established: false} = state, :establish, {:ok, _}),
    do: become_ready(%{state | established: true})

  def setup_reply(state, :establish, {:ok, _}),
    do: setup_request(state, "trials", %{"study" => state.study}, :reconcile)

  def setup_reply(state, :reconcile, {:ok, %{"trials" => trials}}) do
    state = Session.reconcile(state, trials)
    burn = TrialLedger.to_burn(state.ledger, trials)

    if burn > 0,
      do: setup_request(state, "ask", %{"study" => state.study, "n" => min(burn, 1000)}, :burn),
      else: become_ready(state)
  end

  def setup_reply(state, :burn, {:ok, %{"trials" => trials}}) do
    state =
      Enum.reduce(trials, state, fn %{"number" => n}, state ->
        params = %{
          "study" => state.study,
          "number" => n,
          "state" => "fail",
          "user_attrs" => %{"optuna_bridge" => "lost in a worker restart"}
        }

        {_, state} = Frames.send_request(state, "tell", JSON.encode!(params), :ignore)
        state
      end)

    become_ready(state)
  end

  def setup_reply(%{established: false} = state, :establish, {:error, error}) do
    Restart.kill_worker(state)

    elem_state(
      Restart.start_failed(%{state | owner: nil, os_pid: nil}, %{error | method: "create"})
    )
  end

  def setup_reply(state, step, {:error, error}) do
    Logger.error("optuna_bridge study #{inspect(state.study)}: #{step} failed: #{error.message}")
    Restart.kill_worker(state)
    elem_state(Restart.start_failed(%{state | owner: nil, os_pid: nil}, error))
  end

  def become_ready(state) do
    Process.cancel_timer(state.start_timer)
    state = %{state | status: :ready, start_timer: nil}
    {refs, queue} = {:queue.to_list(state.queue), :queue.new()}

    Enum.reduce(
      refs,
      Server.publish(%{state | queue: queue, queued_casts: 0}),
      &Server.run_call(&2, &1)
    )
  end
end
