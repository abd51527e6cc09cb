defmodule OptunaBridge.Study.SessionTest do
  @moduledoc "The study process's recovery state on its own: no worker, no process."
  use ExUnit.Case, async: true

  import ExUnit.CaptureLog

  alias OptunaBridge.{CheckpointPolicy, Error, TrialLedger}
  alias OptunaBridge.Study.Session

  @create %{"study" => "s", "search_space" => %{}}

  defp state(fields) do
    Map.merge(
      %{
        study: "s",
        established: true,
        create: @create,
        create_json: ~s({"study":"s"}),
        ready: %{"storage" => "memory"},
        snapshot: nil,
        ledger: TrialLedger.new(),
        checkpoint: CheckpointPolicy.new([]),
        errors: []
      },
      Map.new(fields)
    )
  end

  describe "establish_request/1: what a new worker is asked first" do
    test "the first start creates the study from the params encoded by the caller" do
      assert Session.establish_request(state(established: false)) ==
               {"create", {:raw, ~s({"study":"s"})}}
    end

    test "after a restart on a durable storage the study is loaded again" do
      assert Session.establish_request(state(ready: %{"storage" => "sqlite"})) ==
               {"create", Map.put(@create, "load_if_exists", true)}
    end

    test "in memory without a checkpoint it is created anew, with one it is imported" do
      assert Session.establish_request(state([])) == {"create", @create}

      assert Session.establish_request(state(snapshot: %{"trials" => []})) ==
               {"import", %{"snapshot" => %{"trials" => []}, "overwrite" => true}}
    end
  end

  test "trial_lost/3 is a tell's :trial_lost error naming the trial and the study" do
    assert %Error{kind: :trial_lost, method: "tell", data: %{"number" => 7}, message: message} =
             Session.trial_lost(state([]), 7)

    assert message =~ ~s(trial 7 of study "s" is lost: it was handed out by a worker that died)
    assert Session.trial_lost(state([]), 7, "why").message =~ "is lost: why"
  end

  test "record_error/2 keeps the newest 100 errors, newest first, and logs each" do
    error = fn n -> %{Error.client(:timeout, "e#{n}") | method: "tell"} end

    log =
      capture_log(fn ->
        state = Enum.reduce(1..101, state([]), &Session.record_error(&2, error.(&1)))
        assert length(state.errors) == 100
        assert hd(state.errors).message == "e101"
        assert List.last(state.errors).message == "e2"
      end)

    assert log =~ "tell failed: timeout"
  end

  test "reconcile/2 reports what a restart lost: tells, trials and added trials" do
    ledger =
      TrialLedger.new()
      |> TrialLedger.handed_out([
        %{number: 0, params: %{"x" => 0}},
        %{number: 1, params: %{"x" => 1}},
        %{number: 2, params: %{"x" => 2}}
      ])
      |> TrialLedger.told(1, 0, true)
      |> TrialLedger.added(2, [3], true)
      |> TrialLedger.told(3, 1, true)

    # the new worker has trial 1 running with its params (its tell died), and nothing else
    new = [%{"number" => 1, "state" => "running", "params" => %{"x" => 1}}]

    capture_log(fn ->
      state = Session.reconcile(state(ledger: ledger), new)
      kinds = state.errors |> Enum.map(&{&1.method, &1.data["number"]}) |> Enum.sort()
      assert kinds == [{"add_trials", 3}, {"tell", 0}, {"tell", 1}]
      assert Enum.all?(state.errors, &(&1.kind == :trial_lost))
      assert TrialLedger.lost?(state.ledger, 2)
      refute TrialLedger.lost?(state.ledger, 1)
      assert Enum.any?(state.errors, &(&1.message =~ "tell it again"))
    end)
  end
end
