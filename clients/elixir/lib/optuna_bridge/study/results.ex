defmodule OptunaBridge.Study.Results do
  @moduledoc false
  # A worker's reply decoded into what the call returns (`{:ok, [%Trial{}]}`, `{:ok, bytes}`,
  # ...), and what the reply changes in the trial ledger (trials handed out, finished, added).

  alias OptunaBridge.{CheckpointPolicy, ClientId, Error, TrialLedger, Wire}
  alias OptunaBridge.Study.Checkpoints

  # A trial the worker says is finished (told elsewhere, or failed when its lease ended) is no
  # longer handed out.
  def call_result(state, {verb, number}, {:error, %Error{kind: :trial_finished}} = error)
      when verb in [:tell, :renew],
      do:
        {error,
         %{state | ledger: refused(TrialLedger.finished(state.ledger, [number]), verb, number)}}

  # A refused tell changed nothing: no crash can lose it, so none reports it as :trial_lost.
  def call_result(state, {:tell, number}, {:error, _} = error),
    do: {error, %{state | ledger: TrialLedger.refused(state.ledger, number)}}

  def call_result(state, _kind, {:error, error}), do: {{:error, error}, state}

  def call_result(state, :ask, {:ok, %{"trials" => trials}}) do
    asked = trials |> Enum.map(&Wire.asked/1) |> ClientId.not_held(state.ledger.asked)
    {{:ok, asked}, %{state | ledger: TrialLedger.handed_out(state.ledger, asked)}}
  end

  def call_result(state, {:tell, _number}, {:ok, result}), do: {{:ok, Wire.trial(result)}, state}
  def call_result(state, :report, {:ok, result}), do: {{:ok, result["should_prune"]}, state}

  def call_result(state, :trials, {:ok, %{"trials" => trials}}) do
    trials = Enum.map(trials, &Wire.trial/1)
    {{:ok, trials}, %{state | ledger: TrialLedger.seen(state.ledger, trials)}}
  end

  def call_result(state, :metric_names, {:ok, result}),
    do: {{:ok, result["metric_names"]}, state}

  def call_result(state, {:renew, _}, {:ok, %{"lease_end" => lease_end}}),
    do: {{:ok, lease_end}, state}

  # Added trials are finished and never handed out; their numbers are remembered like tells
  # (frame seq: the newest written, an upper bound of the request's) until they are safe.
  def call_result(state, :add_trials, {:ok, %{"numbers" => numbers}}) do
    remember? = not (Checkpoints.memory?(state) and CheckpointPolicy.off?(state.checkpoint))
    ledger = TrialLedger.added(state.ledger, state.seq, numbers, remember?)
    {{:ok, numbers}, Checkpoints.after_tell(%{state | ledger: ledger})}
  end

  def call_result(state, :plot, {:ok, %{"format" => "plotly", "figure" => figure}}),
    do: {{:ok, figure}, state}

  def call_result(state, :plot, {:ok, %{"format" => format, "data" => data}}) do
    case Base.decode64(data) do
      {:ok, bytes} ->
        {{:ok, bytes}, state}

      :error ->
        {{:error, Error.client(:internal_error, "the #{format} figure is not base64")}, state}
    end
  end

  def call_result(state, :snapshot, {:ok, result}), do: {{:ok, result["snapshot"]}, state}

  # Deleting is final: no snapshot, ledger or checkpoint of the study is kept to bring it back.
  def call_result(state, :delete, {:ok, result}) do
    state = %{state | deleted: true, snapshot: nil, ledger: TrialLedger.new()}
    {{:ok, result}, %{state | checkpoint: CheckpointPolicy.clean(state.checkpoint)}}
  end

  def call_result(%{deleted: true} = state, {:checkpoint_now, _}, {:ok, _}),
    do: {{:ok, :checkpointed}, state}

  def call_result(state, {:checkpoint_now, seq}, {:ok, %{"snapshot" => snapshot}}) do
    ledger = TrialLedger.safe_through(state.ledger, seq)
    {{:ok, :checkpointed}, %{state | snapshot: snapshot, ledger: ledger}}
  end

  def call_result(state, _raw, {:ok, result}), do: {{:ok, result}, state}

  def refused(ledger, :tell, number), do: TrialLedger.refused(ledger, number)
  def refused(ledger, :renew, _number), do: ledger
end
