defmodule OptunaBridge.LateReplyTest do
  @moduledoc "OptunaBridge.LateReply on its own: what each late reply means."
  use ExUnit.Case, async: true

  alias OptunaBridge.{Error, LateReply}

  test "a late ask releases its trials" do
    assert {:release, [3, 4], %Error{kind: :timeout, method: "ask", data: data}} =
             LateReply.classify(
               "s",
               :ask,
               {:ok, %{"trials" => [%{"number" => 3}, %{"number" => 4}]}}
             )

    assert data == %{"numbers" => [3, 4], "applied" => true}

    assert %{"number" => 3, "state" => "fail", "skip_if_finished" => true} =
             LateReply.release_params("s", 3)
  end

  test "late tell, renew, report and add_trials replies are recorded, applied or not" do
    assert {:record, %Error{method: "tell", data: %{"number" => 1, "applied" => true}} = e} =
             LateReply.classify("s", {:tell, 1}, {:ok, %{}})

    assert e.message =~ "tell of trial 1 of study \"s\" timed out in the client but was applied"

    refused = %Error{kind: :trial_finished, message: "finished", data: %{}}

    assert {:record, %Error{method: "renew", data: data} = e} =
             LateReply.classify("s", {:renew, 2}, {:error, refused})

    assert data == %{"number" => 2, "applied" => false, "error" => "trial_finished"}
    assert e.message =~ "the worker refused it: trial_finished"

    assert {:record, %Error{method: "report", data: %{"applied" => true}}} =
             LateReply.classify("s", :report, {:ok, %{}})

    assert {:record, %Error{method: "add_trials"}} =
             LateReply.classify("s", :add_trials, {:ok, %{"numbers" => [1]}})
  end

  test "late reads, and an ask that created nothing, are ignored" do
    assert :ignore = LateReply.classify("s", :trials, {:ok, %{}})
    assert :ignore = LateReply.classify("s", :raw, {:error, %Error{kind: :timeout}})
    assert :ignore = LateReply.classify("s", :ask, {:ok, %{"trials" => []}})
    assert :ignore = LateReply.classify("s", :ask, {:error, %Error{kind: :invalid_params}})
  end
end
