defmodule OptunaBridge.Study.Checkpoints do
  @moduledoc false
  # When told results are safe: an in-memory study's checkpoints (`export` snapshots timed by
  # `OptunaBridge.CheckpointPolicy`, kept to import into a new worker) and, on a durable storage,
  # tells the worker has processed.

  require Logger

  alias OptunaBridge.{CheckpointPolicy, Error, Outbox, Telemetry, TrialLedger}
  alias OptunaBridge.Study.Frames

  # A tell was written (state.seq is its frame): the trial is no longer handed out; the tell is
  # remembered until it is safe (in a checkpoint, or processed by a durable worker). With
  # in-memory storage and checkpoints off nothing survives a crash, so nothing is remembered.
  def told(state, number) do
    remember? = not (memory?(state) and CheckpointPolicy.off?(state.checkpoint))

    %{state | ledger: TrialLedger.told(state.ledger, state.seq, number, remember?)}
  end

  def memory?(state), do: state.ready["storage"] == "memory"

  # In memory, OptunaBridge.CheckpointPolicy says when the next export is due.
  def after_tell(%{ready: %{"storage" => "memory"}} = state) do
    {action, policy} = CheckpointPolicy.told(state.checkpoint, now_ms())
    checkpoint_action(%{state | checkpoint: policy}, action)
  end

  # On a durable storage a tell is safe once processed: keep only those the worker may not
  # have read (written at or after the oldest frame not known to be processed).
  def after_tell(state) do
    oldest =
      case Outbox.unsettled(state.outbox) do
        [{:request, seq, _, _} | _] -> seq
        [{:notification, seq, _, _, _} | _] -> seq
        [] -> state.seq + 1
      end

    %{state | ledger: TrialLedger.safe_through(state.ledger, oldest - 1)}
  end

  def now_ms, do: System.monotonic_time(:millisecond)

  def checkpoint_action(state, :export), do: checkpoint(state)
  def checkpoint_action(state, :wait), do: state

  def checkpoint_action(state, {:arm, delay}) do
    Process.send_after(self(), :checkpoint, delay)
    state
  end

  def checkpoint(%{status: :ready} = state) do
    case Frames.send_request(
           state,
           "export",
           ~s({"study":) <> state.study_json <> "}",
           {:checkpoint, state.seq + 1, now_ms()}
         ) do
      {:ok, state} -> %{state | checkpoint: CheckpointPolicy.exported(state.checkpoint)}
      {:error, _error, state} -> state
    end
  end

  def checkpoint(state), do: state

  def checkpointed(%{deleted: true} = state, _seq, _reply), do: state

  def checkpointed(state, {seq, started}, {:ok, %{"snapshot" => snapshot}}) do
    now = now_ms()

    Telemetry.execute(
      [:optuna_bridge, :checkpoint, :stop],
      %{duration: System.convert_time_unit(now - started, :millisecond, :native)},
      %{study: state.study}
    )

    policy = CheckpointPolicy.finished(state.checkpoint, started, now)
    ledger = TrialLedger.safe_through(state.ledger, seq)
    %{state | snapshot: snapshot, ledger: ledger, checkpoint: policy}
  end

  def checkpointed(state, _seq, {:error, %Error{kind: :method_not_found}}) do
    Logger.warning("optuna_bridge: the worker has no export method; checkpoints are off")
    %{state | checkpoint: CheckpointPolicy.disable(state.checkpoint)}
  end

  def checkpointed(state, _seq, {:error, error}) do
    Logger.warning("optuna_bridge: checkpoint export failed: #{error.message}")
    state
  end
end
