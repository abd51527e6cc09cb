defmodule OptunaBridge.RecoveryTest do
  @moduledoc "kill -9 of the worker mid-run: callers get :worker_crashed, the study comes back."
  use ExUnit.Case, async: true

  alias OptunaBridge.{Error, Study}
  alias OptunaBridge.TestSupport

  @space %{x: [type: "float", low: -10.0, high: 10.0]}

  defp start_study(name, opts) do
    config = %{name: name, sampler: %{type: "random", seed: 3}}
    TestSupport.start_study!(config, @space, opts)
  end

  defp complete_trials(study) do
    {:ok, trials} = Study.trials(study, states: ["complete"])
    Enum.map(trials, &{&1.number, &1.params, &1.values})
  end

  test "in memory: the study is rebuilt from the last snapshot" do
    study = start_study("mem", checkpoint_every: 1, checkpoint_spacing: 0)
    TestSupport.run_trials(study, 5, &(&1["x"] * &1["x"]))
    before = complete_trials(study)
    assert length(before) == 5

    info = TestSupport.kill_worker_and_wait(study)
    assert %{storage: "memory", restarts: 1} = info

    assert complete_trials(study) == before
    assert {:ok, [%{number: 5}]} = Study.ask(study)
    assert {:ok, %{values: [_]}} = Study.best_trial(study)
  end

  test "in memory: tells cast without waiting are in the snapshot too" do
    study = start_study("mem-cast", checkpoint_every: 2, checkpoint_spacing: 0)
    {:ok, asked} = Study.ask(study, 4)
    Enum.each(asked, &Study.tell_async(study, &1.number, 1.0 * &1.number))
    before = complete_trials(study)
    assert length(before) == 4

    TestSupport.kill_worker_and_wait(study)
    assert complete_trials(study) == before
  end

  @tag :tmp_dir
  test "durable sqlite: the study is loaded again", %{tmp_dir: dir} do
    study = start_study("durable", worker_args: ["--storage", "sqlite:///#{dir}/x.db"])
    TestSupport.run_trials(study, 4, &(&1["x"] * &1["x"]))
    before = complete_trials(study)

    assert %{storage: "sqlite", restarts: 1} = TestSupport.kill_worker_and_wait(study)
    assert complete_trials(study) == before
    assert {:ok, [%{number: 4}]} = Study.ask(study)
  end

  test "pending callers get :worker_crashed at once, never a hang" do
    study = start_study("pending", timeout: 60_000)
    TestSupport.run_trials(study, 2, &(&1["x"] * &1["x"]))
    %{os_pid: os_pid} = Study.info(study)
    TestSupport.signal(os_pid, "STOP")

    tasks = for _ <- 1..3, do: Task.async(fn -> Study.ask(study) end)
    # Wait until the three requests are written to the (stopped) worker.
    TestSupport.wait_until(fn -> map_size(:sys.get_state(study).pending) == 3 end)
    TestSupport.signal(os_pid, "KILL")

    for task <- tasks do
      assert {:error, %Error{kind: :worker_crashed, method: "ask", data: %{"exit_status" => 137}}} =
               Task.await(task, 30_000)
    end

    assert {:ok, [%{number: 2}]} = Study.ask(study)
  end
end
