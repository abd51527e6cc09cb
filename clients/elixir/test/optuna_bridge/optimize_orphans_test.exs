defmodule OptunaBridge.OptimizeOrphansTest do
  @moduledoc """
  An `ask` whose reply dies with the worker (kill -9 after the trial was stored, before the reply
  was written) during `optimize/3`: after it returns no trial is RUNNING, on memory and on SQLite,
  and the run's counts are right (issue 22, item 1).

  The kill is made deterministic by `test/support/crash_after_ask.py`: the real worker, which
  SIGKILLs itself right after the ask that stores trial `OB_CRASH_AT` (once per test: a marker file).
  """
  use ExUnit.Case, async: true

  import ExUnit.CaptureLog

  alias OptunaBridge.{Study, TestSupport, Trial, Worker}

  @space [x: [type: "float", low: -10.0, high: 10.0]]
  @crash_script Path.expand("../support/crash_after_ask.py", __DIR__)

  @moduletag :tmp_dir

  # A `python:` that runs the real worker through crash_after_ask.py. The worker started after
  # the crash waits for the file `go` first (the test decides when the restart ends).
  defp crashing_python(dir) do
    wrapper = Path.join(dir, "python")
    marker = Path.join(dir, "crashed")
    go = Path.join(dir, "go")

    File.write!(wrapper, """
    #!/bin/sh
    if [ -e "#{marker}" ]; then while [ ! -e "#{go}" ]; do sleep 0.02; done; fi
    exec "#{Worker.python([])}" "#{@crash_script}" "$@"
    """)

    File.chmod!(wrapper, 0o755)
    wrapper
  end

  defp start(name, storage, dir, crash_at, opts \\ []) do
    worker_args = TestSupport.storage_args(storage, dir, "o.db")

    marker = Path.join(dir, "crashed")

    opts =
      [
        worker_args: worker_args,
        restart_backoff: 10,
        python: crashing_python(dir),
        env: [{"OB_CRASH_AT", Integer.to_string(crash_at)}, {"OB_CRASH_MARKER", marker}]
      ] ++ opts

    config = %{name: name, sampler: %{type: "random", seed: 7}}
    {TestSupport.start_study!(config, @space, opts, restart: :temporary), marker}
  end

  defp objective(trial) do
    Process.sleep(20)
    (trial.params["x"] - 2) ** 2
  end

  for storage <- [:memory, :sqlite] do
    @storage storage

    test "an ask whose reply died with the worker (#{storage}): nothing left RUNNING, counted once",
         %{tmp_dir: dir} do
      {study, marker} = start("orphan-ask", @storage, dir, 5)
      File.write!(Path.join(dir, "go"), "")

      log =
        capture_log(fn ->
          assert {:ok, %{best: %Trial{state: :complete}, completed: 12, failed: 0} = summary} =
                   OptunaBridge.optimize(study, &objective/1,
                     n_trials: 12,
                     concurrency: 3,
                     report: true
                   )

          send(self(), {:summary, summary})
        end)

      assert File.read!(marker) == "5", log
      assert_received {:summary, _summary}
      states = TestSupport.count_by_state(study)
      refute Map.has_key?(states, :running), inspect(states)
      assert states[:complete] == 12, inspect(states)
      assert Study.info(study).restarts == 1

      # the orphan (trial 5 on SQLite) came back resumed and ran within the budget
      if @storage == :sqlite do
        assert {:ok, [%Trial{number: 5, state: :complete}]} =
                 Study.trials(study, offset: 5, limit: 1)
      end
    end

    test "the run ends while the worker restarts after an ask's reply died (#{storage}): " <>
           "the orphan is told fail",
         %{tmp_dir: dir} do
      {study, marker} = start("orphan-deadline", @storage, dir, 1)
      {summary, log} = run_past_deadline(study, dir, marker)
      assert File.read!(marker) == "1", log

      # on SQLite trial 0 completed; in memory the restart lost it and it ran again
      assert %{completed: 1, failed: 0, best: %Trial{state: :complete}} = summary

      states = TestSupport.count_by_state(study)
      refute Map.has_key?(states, :running), inspect(states)
      assert states[:complete] == 1

      if @storage == :sqlite do
        assert summary.abandoned == 1
        assert states[:fail] == 1
        assert {:ok, [orphan]} = Study.trials(study, offset: 1, limit: 1)
        assert %Trial{number: 1, state: :fail} = orphan
        assert orphan.user_attrs["fail_reason"] =~ "worker crash"
        assert orphan.extra["client"] == Study.info(study).client
      else
        # in memory the new worker starts from the study's checkpoint: the orphan is not there
        assert summary.abandoned == 0
      end
    end
  end

  test "a trial the study process hands out by hand is not the run's orphan", %{tmp_dir: dir} do
    {study, marker} = start("orphan-held", :sqlite, dir, 2)
    {:ok, [%Trial{number: 0} = mine]} = Study.ask(study)
    {summary, log} = run_past_deadline(study, dir, marker, 1)
    assert File.read!(marker) == "2", log
    assert %{completed: 1, failed: 0, abandoned: 1} = summary

    assert %{held: [0], client: "orphan-held@" <> _} = Study.info(study)
    assert TestSupport.count_by_state(study) == %{running: 1, complete: 1, fail: 1}
    assert {:ok, _} = Study.tell(study, mine.number, 1.0)
    assert TestSupport.count_by_state(study) == %{complete: 2, fail: 1}
  end

  test "client: false: the orphan cannot be told from another client's trial", %{tmp_dir: dir} do
    {study, marker} = start("orphan-anonymous", :sqlite, dir, 1, client: false)
    {summary, log} = run_past_deadline(study, dir, marker)
    assert File.read!(marker) == "1", log
    # the ask made again after the crash is a new trial (nothing comes back resumed): it runs
    assert %{completed: 2, abandoned: 0} = summary
    assert %{client: nil} = Study.info(study)
    assert TestSupport.count_by_state(study) == %{running: 1, complete: 2}
    assert {:ok, [%Trial{number: 1, state: :running}]} = Study.trials(study, states: [:running])
  end

  test "the study process gives up after the crash: optimize/3 returns its error", %{tmp_dir: dir} do
    {study, marker} = start("orphan-no-restart", :sqlite, dir, 0, max_restarts: 0)
    ref = Process.monitor(study)

    log =
      capture_log(fn ->
        assert {:error, %OptunaBridge.Error{}} =
                 OptunaBridge.optimize(study, & &1.params["x"], n_trials: 3)
      end)

    assert File.read!(marker) == "0", log
    assert_receive {:DOWN, ^ref, :process, ^study, {:worker_restart_limit, _}}, 60_000
    assert log =~ "could not look for trials whose ask died"
  end

  # Trial `first` runs until `go`; the next ask kills the worker; the new worker starts only once
  # the run's deadline has passed (`go` is written `timeout` ms after trial `first` began, and the
  # run's deadline is earlier), so the orphan is never handed out again in this run.
  defp run_past_deadline(study, dir, marker, first \\ 0) do
    go = Path.join(dir, "go")
    timeout = 2_000
    test = self()

    opener =
      Task.async(fn ->
        assert_receive {:began, ^first, began}, 60_000
        TestSupport.wait_until(fn -> File.exists?(marker) end, 60_000)
        Process.sleep(max(began + timeout + 50 - System.monotonic_time(:millisecond), 0))
        File.write!(go, "")
      end)

    objective = fn trial ->
      send(opener.pid, {:began, trial.number, System.monotonic_time(:millisecond)})
      TestSupport.wait_until(fn -> File.exists?(go) end, 60_000)
      trial.params["x"] ** 2
    end

    log =
      capture_log(fn ->
        result =
          OptunaBridge.optimize(study, objective, timeout: timeout, concurrency: 2, report: true)

        send(test, {:result, result})
      end)

    Task.await(opener, 70_000)
    assert_received {:result, {:ok, summary}}
    {summary, log}
  end
end
