defmodule OptunaBridge.Study.Session do
  @moduledoc false
  # The study process's recovery state, as pure functions of its state map: what a new worker is
  # asked first, which trials a restart lost (reported as `:trial_lost`), and the errors kept for
  # `OptunaBridge.Study.errors/2`. Unit-tested in test/optuna_bridge/study_session_test.exs.

  require Logger

  alias OptunaBridge.{CheckpointPolicy, Error, TrialLedger}

  @max_errors 100

  # What a new worker is asked first: the study is created (the first time, or again on a durable
  # storage, loading what it holds), or imported from the last checkpoint of an in-memory study.
  def establish_request(%{established: false} = state),
    do: {"create", {:raw, state.create_json}}

  def establish_request(%{ready: %{"storage" => storage}} = state) when storage != "memory",
    do: {"create", Map.put(state.create, "load_if_exists", true)}

  def establish_request(%{snapshot: nil} = state), do: {"create", state.create}

  def establish_request(state),
    do: {"import", %{"snapshot" => state.snapshot, "overwrite" => true}}

  # A trial handed out by a dead worker is kept only if the new worker has it running with the
  # same params; tells that died with the worker are reported.
  def reconcile(state, trials) do
    {ledger, dead} = TrialLedger.reconcile(state.ledger, trials)

    state = %{state | ledger: ledger, checkpoint: CheckpointPolicy.clean(state.checkpoint)}

    Enum.reduce(dead, state, fn
      {n, :tell_again}, state ->
        why = "its tell died with the worker; the trial is running again, tell it again"
        record_error(state, trial_lost(state, n, why))

      {n, :lost}, state ->
        record_error(state, trial_lost(state, n, lost_tell_reason()))

      {n, :add_lost}, state ->
        why = "add_trials recorded it on the worker that died and the new worker does not have it"
        record_error(state, %{trial_lost(state, n, why) | method: "add_trials"})
    end)
  end

  def lost_tell_reason,
    do: "its tell died with the worker and the new worker does not have the trial with its params"

  def trial_lost(
        state,
        number,
        why \\ "it was handed out by a worker that died and the new worker does not have it " <>
          "with the same params"
      ) do
    error =
      Error.client(
        :trial_lost,
        "trial #{number} of study #{inspect(state.study)} is lost: #{why}",
        %{"number" => number}
      )

    %{error | method: "tell"}
  end

  def record_error(state, error) do
    Logger.warning(
      "optuna_bridge study #{inspect(state.study)}: #{error.method} failed: " <>
        "#{error.kind} (#{inspect(error.code)}): #{error.message}"
    )

    %{state | errors: Enum.take([error | state.errors], @max_errors)}
  end
end
