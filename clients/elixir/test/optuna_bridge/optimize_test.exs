defmodule OptunaBridge.OptimizeTest do
  @moduledoc "optimize/3 and report/3 against the real worker: a toy objective, a median pruner."
  use ExUnit.Case, async: true

  import ExUnit.CaptureLog

  alias OptunaBridge.{Error, Study, TestSupport, Trial}

  @space [x: [type: "float", low: -10.0, high: 10.0]]

  defp start(name, config \\ %{}) do
    config = Map.merge(%{name: name, sampler: %{type: "random", seed: 7}}, config)
    TestSupport.start_study!(config, @space)
  end

  test "a toy objective: n_trials run, the best trial is returned" do
    study = start("quad")

    assert {:ok, %Trial{state: :complete, values: [best_value], params: %{"x" => x}}} =
             OptunaBridge.optimize(study, fn t -> (t.params["x"] - 2) ** 2 end, n_trials: 12)

    assert best_value == (x - 2) ** 2
    {:ok, trials} = Study.trials(study)
    assert length(trials) == 12
    assert Enum.all?(trials, &(&1.state == :complete))
    assert best_value == trials |> Enum.map(&Trial.value/1) |> Enum.min()
  end

  test "a median pruner prunes through report/3 and {:pruned, step}" do
    study = start("pruned", %{pruner: %{type: "median", n_startup_trials: 3, n_warmup_steps: 1}})

    # the loss curve is x^2 + 1/(step+1): trials with a large |x| are worse at every step
    objective = fn trial ->
      x = trial.params["x"]

      Enum.reduce_while(0..7, nil, fn step, _ ->
        loss = x * x + 1 / (step + 1)

        case OptunaBridge.report(trial, step, loss) do
          :continue -> {:cont, loss}
          :prune -> {:halt, {:pruned, step}}
        end
      end)
    end

    assert {:ok, %Trial{state: :complete}} =
             OptunaBridge.optimize(study, objective, n_trials: 20, concurrency: 1)

    {:ok, trials} = Study.trials(study)
    pruned = Enum.filter(trials, &(&1.state == :pruned))
    assert length(trials) == 20
    assert pruned != []
    assert Enum.all?(pruned, &(map_size(&1.intermediate_values) < 8))
  end

  test "an objective that raises, throws, exits or returns junk fails its trial with the reason" do
    study = start("failing")
    counter = :counters.new(1, [])

    objective = fn trial ->
      :counters.add(counter, 1, 1)

      case rem(trial.number, 5) do
        0 -> raise "diverged at lr=#{trial.params["x"]}"
        1 -> exit(:boom)
        2 -> throw(:oops)
        3 -> "not a number"
        4 -> trial.params["x"]
      end
    end

    log =
      capture_log(fn ->
        assert {:ok, %Trial{state: :complete}} =
                 OptunaBridge.optimize(study, objective, n_trials: 10, concurrency: 3)
      end)

    assert log =~ "diverged"
    assert :counters.get(counter, 1) == 10
    {:ok, trials} = Study.trials(study)
    by_number = Map.new(trials, &{&1.number, &1})

    assert %{state: :fail, user_attrs: %{"fail_reason" => raised}} = by_number[0]
    assert raised =~ "diverged at lr="
    assert by_number[1].user_attrs["fail_reason"] =~ ":boom"
    assert by_number[2].user_attrs["fail_reason"] =~ ":oops"
    assert by_number[3].user_attrs["fail_reason"] =~ "not a number"
    assert by_number[4].state == :complete
  end

  test "no trial completed: :objective_failed with the last reason" do
    study = start("all-fail")

    capture_log(fn ->
      assert {:error, %Error{kind: :objective_failed, data: %{"failures" => 3} = data}} =
               OptunaBridge.optimize(study, fn _ -> raise ArgumentError, "bad" end, n_trials: 3)

      assert data["last_reason"] =~ "bad"
    end)
  end

  test "concurrency runs objectives at once: each waits until all 4 are running" do
    study = start("concurrent")
    parent = self()

    # a barrier, not a count in a fixed time: no objective returns before the test saw 4 running
    objective = fn trial ->
      send(parent, {:running, self()})

      receive do
        :go -> trial.params["x"]
      after
        120_000 -> raise "fewer than 4 objectives ran at once"
      end
    end

    run =
      Task.async(fn -> OptunaBridge.optimize(study, objective, n_trials: 4, concurrency: 4) end)

    running =
      for _ <- 1..4 do
        assert_receive {:running, pid}, 60_000
        pid
      end

    assert length(Enum.uniq(running)) == 4
    Enum.each(running, &send(&1, :go))
    assert {:ok, _} = Task.await(run, 120_000)

    {:ok, trials} = Study.trials(study)
    assert length(trials) == 4
    assert Enum.all?(trials, &(&1.state == :complete))
  end

  test "timeout stops starting trials: none starts once it passed, running ones finish" do
    study = start("timeout")

    # the baseline of this run: one trial's ask + tell under whatever load the machine has now
    {baseline, {:ok, _}} =
      :timer.tc(fn -> OptunaBridge.optimize(study, fn t -> t.params["x"] end, n_trials: 1) end)

    baseline_ms = div(baseline, 1000)
    timeout = 300
    # every objective outlasts the timeout: when the first one finishes, the deadline has passed,
    # so no trial may start after it, whatever the machine's speed (at most `concurrency` ran)
    objective = fn trial ->
      Process.sleep(timeout + 100)
      trial.params["x"]
    end

    started = System.monotonic_time(:millisecond)
    assert {:ok, _} = OptunaBridge.optimize(study, objective, timeout: timeout, concurrency: 4)
    elapsed = System.monotonic_time(:millisecond) - started

    {:ok, [_baseline | trials]} = Study.trials(study)
    assert length(trials) in 1..4
    assert Enum.all?(trials, &(&1.state == :complete))
    # the deadline, one objective, and the asks and tells of the (at most 4) trials it started
    assert elapsed < timeout + (timeout + 100) + 8 * baseline_ms + 2_000
  end

  test "trial_timeout kills a stuck objective and fails its trial" do
    study = start("stuck")

    capture_log(fn ->
      assert {:ok, %Trial{number: 1}} =
               OptunaBridge.optimize(
                 study,
                 fn t -> if t.number == 0, do: Process.sleep(:infinity), else: 1.0 end,
                 n_trials: 2,
                 concurrency: 2,
                 trial_timeout: 300
               )
    end)

    {:ok, [stuck | _]} = Study.trials(study)
    assert stuck.state == :fail
    assert stuck.user_attrs["fail_reason"] =~ "trial_timeout"
  end

  test "multi-objective: the Pareto front; best_trial refuses, best_trials answers" do
    config = %{name: "multi", directions: ["minimize", "minimize"]}
    study = start_supervised!({Study, {config, @space, []}})

    assert {:ok, [%Trial{} | _] = front} =
             OptunaBridge.optimize(
               study,
               fn t -> [t.params["x"] ** 2, (t.params["x"] - 1) ** 2] end,
               n_trials: 8
             )

    assert {:error, %Error{kind: :multi_objective}} = Study.best_trial(study)
    assert {:ok, ^front} = Study.best_trials(study)
  end

  test "arguments are checked in the caller" do
    study = start("args")
    assert_raise ArgumentError, fn -> OptunaBridge.optimize(study, fn _ -> 1 end, []) end
    assert_raise ArgumentError, fn -> OptunaBridge.optimize(study, fn -> 1 end, n_trials: 1) end

    assert_raise ArgumentError, fn ->
      OptunaBridge.optimize(study, fn _ -> 1 end, n_trials: -1)
    end

    assert_raise ArgumentError, fn ->
      OptunaBridge.optimize(study, fn _ -> 1 end, n_trials: 1, concurrency: 0)
    end

    assert_raise ArgumentError, fn -> OptunaBridge.report(%Trial{number: 0}, 0, 1.0) end
  end

  test ":pruned, call_timeout and option errors" do
    study = start("opts")

    assert {:ok, %Trial{}} =
             OptunaBridge.optimize(
               study,
               fn t -> if rem(t.number, 2) == 0, do: :pruned, else: 1.0 end,
               n_trials: 4,
               call_timeout: 10_000,
               ask: [fixed_params: %{x: 1.0}]
             )

    {:ok, trials} = Study.trials(study)
    assert Enum.map(trials, & &1.state) == [:pruned, :complete, :pruned, :complete]
    assert Enum.all?(trials, &(&1.params["x"] == 1.0))

    for bad <- [
          [timeout: -1],
          [n_trials: 1, trial_timeout: 0],
          [n_trials: 1, call_timeout: :x],
          [n_trials: 1, ask: :x]
        ] do
      assert_raise ArgumentError, fn -> OptunaBridge.optimize(study, fn _ -> 1 end, bad) end
    end
  end

  test "a study that stops: the ask error is returned, running trials are still told" do
    study = start("stopping")
    parent = self()

    log =
      capture_log(fn ->
        result =
          OptunaBridge.optimize(
            study,
            fn t ->
              if t.number == 0, do: send(parent, :first)
              if t.number == 1, do: Study.delete(study)
              1.0
            end,
            n_trials: 5
          )

        send(parent, {:result, result})
      end)

    assert_received {:result, {:error, %Error{kind: kind}}}
    assert kind in [:study_not_found, :no_completed_trials]
    assert log =~ "failed"
  end

  test "report/3 raises the error of a failed report, which fails the trial" do
    study = start("report-fails")

    capture_log(fn ->
      OptunaBridge.optimize(
        study,
        fn t ->
          OptunaBridge.report(%{t | number: 999}, 0, 1.0)
        end,
        n_trials: 1
      )
    end)

    {:ok, [t]} = Study.trials(study)
    assert t.state == :fail

    assert t.user_attrs["fail_reason"] =~ "trial_not_found" or
             t.user_attrs["fail_reason"] =~ "999"
  end
end
