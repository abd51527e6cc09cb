defmodule OptunaBridge.Study.ResultsTest do
  @moduledoc "Worker replies decoded into call results, and what they change in the trial ledger."
  use ExUnit.Case, async: true

  alias OptunaBridge.{CheckpointPolicy, Error, Trial, TrialLedger}
  alias OptunaBridge.Study.Results

  defp state(fields \\ []) do
    Map.merge(
      %{
        ready: %{"storage" => "sqlite"},
        checkpoint: CheckpointPolicy.new([]),
        ledger: TrialLedger.new(),
        snapshot: nil,
        deleted: false,
        seq: 4,
        outbox: OptunaBridge.Outbox.new()
      },
      Map.new(fields)
    )
  end

  test "an error reply is the call's error; a refused tell leaves nothing to report as lost" do
    error = Error.client(:invalid_params, "no")
    assert {{:error, ^error}, _} = Results.call_result(state(), :ask, {:error, error})

    ledger = TrialLedger.told(TrialLedger.new(), 1, 3, true)

    {{:error, ^error}, s} =
      Results.call_result(state(ledger: ledger), {:tell, 3}, {:error, error})

    assert s.ledger.told == []
  end

  test "a trial the worker says is finished is no longer handed out" do
    ledger = TrialLedger.handed_out(TrialLedger.new(), [%{number: 2, params: %{}}])
    finished = {:error, Error.client(:trial_finished, "done")}

    for verb <- [:tell, :renew] do
      {^finished, s} = Results.call_result(state(ledger: ledger), {verb, 2}, finished)
      assert s.ledger.asked == %{}
    end
  end

  test "ask hands trials out; tell, trials, report, renew, metric names decode their result" do
    wire = %{"number" => 0, "params" => %{"x" => 1}, "state" => "running"}

    {{:ok, [%Trial{number: 0, params: %{"x" => 1}}]}, s} =
      Results.call_result(state(), :ask, {:ok, %{"trials" => [wire]}})

    assert Map.has_key?(s.ledger.asked, 0)

    told = %{"number" => 0, "state" => "complete", "values" => [1.5]}

    assert {{:ok, %Trial{state: :complete}}, _} =
             Results.call_result(state(), {:tell, 0}, {:ok, told})

    assert {{:ok, [%Trial{number: 0}]}, _} =
             Results.call_result(state(), :trials, {:ok, %{"trials" => [told]}})

    assert {{:ok, true}, _} =
             Results.call_result(state(), :report, {:ok, %{"should_prune" => true}})

    assert {{:ok, "T"}, _} =
             Results.call_result(state(), {:renew, 0}, {:ok, %{"lease_end" => "T"}})

    assert {{:ok, ["a"]}, _} =
             Results.call_result(state(), :metric_names, {:ok, %{"metric_names" => ["a"]}})

    assert {{:ok, %{"any" => 1}}, _} = Results.call_result(state(), :raw, {:ok, %{"any" => 1}})
  end

  test "a figure is the plotly JSON, or the image bytes decoded from base64" do
    plotly = {:ok, %{"format" => "plotly", "figure" => %{"data" => []}}}
    assert {{:ok, %{"data" => []}}, _} = Results.call_result(state(), :plot, plotly)

    png = {:ok, %{"format" => "png", "data" => Base.encode64(<<137, 80>>)}}
    assert {{:ok, <<137, 80>>}, _} = Results.call_result(state(), :plot, png)

    bad = {:ok, %{"format" => "png", "data" => "not base64!"}}

    assert {{:error, %Error{kind: :internal_error}}, _} = Results.call_result(state(), :plot, bad)
  end

  test "added trials are remembered until safe; a snapshot or checkpoint keeps the snapshot" do
    {{:ok, [5, 6]}, s} = Results.call_result(state(), :add_trials, {:ok, %{"numbers" => [5, 6]}})
    assert s.ledger.max_number >= 6

    {{:ok, %{"t" => 1}}, _} =
      Results.call_result(state(), :snapshot, {:ok, %{"snapshot" => %{"t" => 1}}})

    {{:ok, :checkpointed}, s} =
      Results.call_result(state(), {:checkpoint_now, 3}, {:ok, %{"snapshot" => %{"t" => 2}}})

    assert s.snapshot == %{"t" => 2}

    deleted = state(deleted: true)

    assert {{:ok, :checkpointed}, ^deleted} =
             Results.call_result(deleted, {:checkpoint_now, 3}, {:ok, %{"snapshot" => %{}}})
  end

  test "a delete drops every means to bring the study back" do
    s = state(snapshot: %{"t" => 1}, ledger: TrialLedger.told(TrialLedger.new(), 1, 0, true))
    {{:ok, %{}}, s} = Results.call_result(s, :delete, {:ok, %{}})
    assert s.deleted and s.snapshot == nil and s.ledger == TrialLedger.new()
  end
end
