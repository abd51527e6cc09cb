defmodule OptunaBridge.OptimizeRecoveryTest do
  @moduledoc """
  optimize/3 keeps every result through worker crashes (kill -9 during and after a run, on memory
  and on SQLite), and its tasks are tied to its caller (issue 22, items 1 and 2).
  """
  use ExUnit.Case, async: true

  import ExUnit.CaptureLog

  alias OptunaBridge.{Study, TestSupport, Trial}

  @space [x: [type: "float", low: -10.0, high: 10.0]]

  @moduletag :tmp_dir

  defp start(name, storage, dir, opts \\ []) do
    worker_args = TestSupport.storage_args(storage, dir, "o.db")

    config = %{name: name, sampler: %{type: "random", seed: 7}}
    opts = [worker_args: worker_args, restart_backoff: 10] ++ opts
    TestSupport.start_study!(config, @space, opts)
  end

  defp kill_worker(study) do
    %{os_pid: os_pid} = Study.info(study)
    TestSupport.signal(os_pid, "KILL")
    os_pid
  end

  defp wait_restarted(study, old_os_pid) do
    TestSupport.wait_until(
      fn ->
        case Study.info(study) do
          %{status: :ready, os_pid: pid} when pid != old_os_pid and pid != nil -> true
          _ -> false
        end
      end,
      60_000
    )
  end

  for storage <- [:memory, :sqlite] do
    @storage storage

    test "a kill -9 of the worker during optimize/3 (#{storage}): every result kept once", %{
      tmp_dir: dir
    } do
      study = start("crash-during", @storage, dir)
      killed = :atomics.new(1, [])

      # the 6th objective to run kills the worker once, while other trials are in flight
      objective = fn trial ->
        if :atomics.add_get(killed, 1, 1) == 6, do: kill_worker(study)
        Process.sleep(20)
        (trial.params["x"] - 2) ** 2
      end

      capture_log(fn ->
        assert {:ok, %{best: %Trial{state: :complete}, completed: 20, failed: 0} = summary} =
                 OptunaBridge.optimize(study, objective,
                   n_trials: 20,
                   concurrency: 3,
                   report: true
                 )

        send(self(), {:summary, summary})
      end)

      assert_received {:summary, summary}
      assert summary.retried >= 0
      states = TestSupport.count_by_state(study)
      assert states[:complete] == 20
      refute Map.has_key?(states, :running)
      assert Study.info(study).restarts == 1
    end

    test "a kill -9 right after optimize/3 returned (#{storage}) undoes no result", %{
      tmp_dir: dir
    } do
      study = start("crash-after", @storage, dir)

      assert {:ok, %Trial{number: best_number, values: best_values}} =
               OptunaBridge.optimize(study, fn t -> t.params["x"] ** 2 end, n_trials: 20)

      capture_log(fn ->
        old = kill_worker(study)
        wait_restarted(study, old)
      end)

      states = TestSupport.count_by_state(study)
      assert states[:complete] == 20
      assert map_size(states) == 1

      assert {:ok, %Trial{number: ^best_number, values: ^best_values}} = Study.best_trial(study)
    end
  end

  test "report: true counts pruned and failed trials; the default return is the best trial" do
    study = start("summary", :memory, nil)

    objective = fn trial ->
      case rem(trial.number, 3) do
        0 -> trial.params["x"]
        1 -> {:pruned, 0}
        2 -> raise "no"
      end
    end

    capture_log(fn ->
      assert {:ok, %{completed: 2, pruned: 2, failed: 2, retried: 0, best: %Trial{}}} =
               OptunaBridge.optimize(study, objective, n_trials: 6, report: true)
    end)

    assert_raise ArgumentError, fn ->
      OptunaBridge.optimize(study, & &1.params["x"], n_trials: 1, report: :yes)
    end

    assert_raise ArgumentError, fn ->
      OptunaBridge.optimize(study, & &1.params["x"], n_trials: 1, max_retries: -1)
    end
  end

  test "a run of more than one page of trials is checked in full" do
    study = start("pages", :memory, nil)

    assert {:ok, %{completed: 510, retried: 0}} =
             OptunaBridge.optimize(study, & &1.params["x"], n_trials: 510, report: true)

    assert TestSupport.count_by_state(study) == %{complete: 510}
  end

  test "report: true with nothing completed is a summary with best: nil" do
    study = start("nothing", :memory, nil)

    capture_log(fn ->
      assert {:ok, %{best: nil, completed: 0, failed: 2}} =
               OptunaBridge.optimize(study, fn _ -> raise "x" end, n_trials: 2, report: true)
    end)
  end

  test "the caller of optimize/3 exits: its tasks stop and their trials are told fail" do
    study = start("caller-dies", :memory, nil)
    test = self()

    caller =
      spawn(fn ->
        OptunaBridge.optimize(
          study,
          fn _ ->
            send(test, :objective_running)
            Process.sleep(60_000)
          end,
          n_trials: 4,
          concurrency: 2
        )
      end)

    assert_receive :objective_running, 30_000
    assert_receive :objective_running, 30_000

    log =
      capture_log(fn ->
        Process.exit(caller, :kill)

        TestSupport.wait_until(
          fn ->
            states = TestSupport.count_by_state(study)
            states == %{fail: 2}
          end,
          30_000
        )
      end)

    assert log =~ "the caller of optimize/3 exited"
    {:ok, trials} = Study.trials(study)
    assert Enum.all?(trials, &(&1.user_attrs["fail_reason"] =~ "the caller of optimize/3"))
  end

  test "with lease_s, leases are renewed while the objective runs longer than the lease" do
    study = start("lease-renew", :memory, nil)

    assert {:ok, %{completed: 2, failed: 0}} =
             OptunaBridge.optimize(
               study,
               fn t ->
                 Process.sleep(4_000)
                 t.params["x"]
               end,
               n_trials: 2,
               concurrency: 2,
               ask: [lease_s: 1.5],
               report: true
             )

    assert TestSupport.count_by_state(study) == %{complete: 2}
  end
end
