defmodule OptunaBridge.StopRulesTest do
  @moduledoc """
  Stop rules through the Elixir client: `stop:` in the study config, `Study.set_stop/3`,
  `:study_stopped` from `ask`, and `OptunaBridge.optimize/3` ending cleanly with the rule.
  """
  # telemetry handlers are global: not async
  use ExUnit.Case, async: false

  alias OptunaBridge.{Error, StopRules, Study, TestSupport, Trial}

  doctest OptunaBridge.StopRules

  @space [x: [type: "float", low: 0.0, high: 1.0]]

  defp start(name, config) do
    config = Map.merge(%{name: name, sampler: %{type: "random", seed: 5}}, config)
    TestSupport.start_study!(config, @space)
  end

  test "optimize/3 ends cleanly when a rule holds and returns the best and the rule" do
    parent = self()
    id = "stop-#{System.unique_integer([:positive])}"

    :telemetry.attach(
      id,
      [:optuna_bridge, :study, :stopped],
      fn _e, m, meta, _ -> send(parent, {:stopped, m, meta}) end,
      nil
    )

    on_exit(fn -> :telemetry.detach(id) end)
    study = start("stop-optimize", %{stop: %{max_trials: 5}})

    assert {:ok, %Trial{values: [_]} = best, %{rule: "max_trials", detail: detail}} =
             OptunaBridge.optimize(study, fn t -> t.params["x"] end,
               n_trials: 50,
               concurrency: 2
             )

    assert detail["max_trials"] == 5
    assert best.state == :complete
    assert_receive {:stopped, %{count: 1}, %{study: "stop-optimize", rule: "max_trials"}}, 30_000
    refute_receive {:stopped, _, _}
    {:ok, trials} = Study.trials(study)
    # no trial left running; concurrency may have started one more before the rule held
    assert Enum.all?(trials, &(&1.state == :complete))
    assert length(trials) in 5..6
  end

  test "ask answers :study_stopped; set_stop changes or clears the rules" do
    study = start("stop-ask", %{stop: [target: 2.0]})
    {:ok, [t]} = Study.ask(study)
    {:ok, told} = Study.tell(study, t.number, 1.0)
    assert told.extra["stopped"]["rule"] == "target"

    assert StopRules.stopped({:ok, told}) == %{
             rule: "target",
             detail: told.extra["stopped"]["detail"]
           }

    assert {:error, %Error{kind: :study_stopped, code: -32012, data: %{"rule" => "target"}}} =
             Study.ask(study)

    assert {:ok, %{"stop" => %{"max_trials" => 3}, "stopped" => nil}} =
             Study.set_stop(study, max_trials: 3)

    assert {:ok, [_]} = Study.ask(study)
    assert {:ok, %{"stop" => nil, "stopped" => nil}} = Study.set_stop(study, nil)

    assert {:error, %Error{kind: :invalid_params, data: %{"field" => "$.params.stop.patience"}}} =
             Study.set_stop(study, patience: 0)
  end

  test "optimize/3 on a study stopped from the start runs nothing" do
    study = start("stop-first", %{stop: %{max_trials: 1}})
    {:ok, [t]} = Study.ask(study)
    {:ok, _} = Study.tell(study, t.number, 0.5)

    assert {:ok, %Trial{number: 0}, %{rule: "max_trials"}} =
             OptunaBridge.optimize(study, fn _ -> raise "never runs" end, n_trials: 3)
  end

  test "bad rules raise in the caller" do
    assert_raise ArgumentError, fn -> StopRules.rules!(%{until: 3}) end
    assert_raise ArgumentError, fn -> StopRules.rules!(%{"until" => 3}) end
    assert_raise ArgumentError, fn -> StopRules.rules!(%{target: "low"}) end
    assert_raise ArgumentError, fn -> StopRules.rules!(5) end
    assert_raise ArgumentError, fn -> StopRules.rules!([:target]) end
    assert StopRules.rules!(%{"patience" => 2}) == %{"patience" => 2}
    assert StopRules.stopped(:ok) == nil
  end
end
