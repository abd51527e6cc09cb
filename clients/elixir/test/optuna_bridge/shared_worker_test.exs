defmodule OptunaBridge.SharedWorkerTest do
  @moduledoc "Many studies on one worker (SharedWorker) and the Pool, against the real worker."
  use ExUnit.Case, async: true

  import ExUnit.CaptureLog

  alias OptunaBridge.{Error, Pool, SharedWorker, Study, TestSupport, Trial}

  @space [x: [type: "float", low: -5.0, high: 5.0]]

  defp shared(name) do
    start_supervised!({SharedWorker, [name: name, id: name]})
  end

  defp study(name, opts) do
    config = %{name: name, sampler: %{type: "random", seed: 3}}
    TestSupport.start_study!(config, @space, opts)
  end

  test "three studies on one worker: one OS process, independent trials" do
    shared(:sw_three)
    studies = for n <- ["a", "b", "c"], do: study("three-#{n}", worker: :sw_three)

    os_pids = Enum.map(studies, &Study.info(&1).os_pid) |> Enum.uniq()
    assert [os_pid] = os_pids
    assert %{os_pid: ^os_pid, attached: 3} = SharedWorker.info(:sw_three)

    results =
      studies
      |> Enum.with_index(1)
      # no deadline of its own (5 s by default raced a busy machine): each call has the study's
      # deadline, and the test ExUnit's
      |> Task.async_stream(
        fn {s, k} ->
          OptunaBridge.optimize(s, fn t -> k * 100 + t.params["x"] ** 2 end,
            n_trials: 5 * k,
            concurrency: 2
          )
        end,
        timeout: :infinity
      )
      |> Enum.map(fn {:ok, r} -> r end)

    for {{:ok, %Trial{values: [v]}}, k} <- Enum.with_index(results, 1), do: assert(v >= k * 100)

    for {s, k} <- Enum.with_index(studies, 1) do
      {:ok, trials} = Study.trials(s)
      assert length(trials) == 5 * k
    end

    assert {:ok, listed} = Study.list(hd(studies))
    assert Enum.map(listed, & &1["study"]) |> Enum.sort() == ["three-a", "three-b", "three-c"]
  end

  test "a failed async tell is reported to its own study only" do
    shared(:sw_errors)
    a = study("err-a", worker: :sw_errors)
    b = study("err-b", worker: :sw_errors)
    {:ok, [t]} = Study.ask(a)
    {:ok, _} = Study.tell(a, t.number, 1.0)

    capture_log(fn ->
      :ok = Study.tell_async(a, t.number, 2.0)
      {:ok, [_]} = Study.ask(b)
      {:ok, _} = Study.trials(a)
    end)

    assert [%Error{kind: :trial_finished, method: "tell"}] = Study.errors(a)
    assert [] = Study.errors(b)
  end

  test "stopping one study keeps the worker for the others" do
    shared(:sw_stop)
    a = study("stop-a", worker: :sw_stop)
    b = study("stop-b", worker: :sw_stop)
    %{os_pid: os_pid} = Study.info(a)
    :ok = Study.stop(a)
    assert Study.info(b).os_pid == os_pid
    assert TestSupport.wait_until(fn -> SharedWorker.info(:sw_stop).attached == 1 end)
    assert {:ok, [_]} = Study.ask(b)
  end

  test "a killed shared worker: every study comes back with its trials (in memory)" do
    shared(:sw_kill)
    opts = [worker: :sw_kill, checkpoint_every: 1, checkpoint_interval: 0, checkpoint_spacing: 0]
    a = study("kill-a", opts)
    b = study("kill-b", opts)

    for s <- [a, b], _ <- 1..3 do
      {:ok, [t]} = Study.ask(s)
      {:ok, _} = Study.tell(s, t.number, 1.0)
    end

    %{os_pid: os_pid} = Study.info(a)

    capture_log(fn ->
      TestSupport.signal(os_pid, "KILL")

      TestSupport.wait_until(fn ->
        Enum.all?([a, b], fn s ->
          info = Study.info(s)
          info.status == :ready and info.os_pid not in [nil, os_pid]
        end)
      end)
    end)

    assert Study.info(a).os_pid == Study.info(b).os_pid

    for s <- [a, b] do
      {:ok, trials} = Study.trials(s)
      assert Enum.count(trials, &(&1.state == :complete)) == 3
    end
  end

  test "a pool places studies by name, the same name on the same worker" do
    start_supervised!({Pool, name: :pool_two, size: 2})
    assert Pool.size(:pool_two) == 2
    names = for i <- 1..6, do: "pooled-#{i}"
    studies = Map.new(names, &{&1, study(&1, pool: :pool_two)})

    by_worker = Enum.group_by(names, &Pool.worker(:pool_two, &1))
    assert map_size(by_worker) == 2

    for {worker, placed} <- by_worker do
      %{os_pid: os_pid} = SharedWorker.info(worker)
      assert Enum.all?(placed, &(Study.info(studies[&1]).os_pid == os_pid))
    end

    assert Pool.worker(:pool_two, "pooled-1") == Pool.worker(:pool_two, "pooled-1")
  end

  test "a study on a shared worker takes no worker-process options" do
    assert_raise ArgumentError, fn ->
      Study.start(%{name: "x"}, @space, worker: :nope, python: "/usr/bin/python3")
    end

    assert_raise ArgumentError, fn -> Study.start(%{name: "x"}, @space, worker: :a, pool: :b) end
  end

  test "a shared worker that is not running is a start error, returned by start itself" do
    # (it used to be the study process's exit, which await_ready could meet as :noproc)
    assert {:error, %Error{kind: :start_failed, message: message}} =
             Study.start(%{name: "orphan"}, @space, worker: :no_such_worker)

    assert message =~ "not running"
    dead = spawn(fn -> :ok end)
    ref = Process.monitor(dead)
    assert_receive {:DOWN, ^ref, :process, _, _}

    assert {:error, %Error{kind: :start_failed}} =
             Study.start(%{name: "orphan"}, @space, worker: dead)
  end
end

defmodule OptunaBridge.SharedWorkerFailureTest do
  @moduledoc "A shared worker that never gets ready, or whose process dies."
  use ExUnit.Case, async: true

  import ExUnit.CaptureLog

  alias OptunaBridge.{Error, SharedWorker, Study, TestSupport}

  @space [x: [type: "float", low: 0.0, high: 1.0]]

  test "a worker with no ready frame within start_timeout is killed; the study start fails" do
    script = Path.join(System.tmp_dir!(), "ob-silent-#{System.unique_integer([:positive])}")
    File.write!(script, "#!/bin/sh\nexec sleep 30\n")
    File.chmod!(script, 0o755)
    on_exit(fn -> File.rm(script) end)

    start_supervised!({SharedWorker, name: :sw_silent, python: script, start_timeout: 300})

    capture_log(fn ->
      {:ok, study} = Study.start(%{name: "silent"}, @space, worker: :sw_silent)
      assert {:error, %Error{kind: :start_failed}} = Study.await_ready(study, 60_000)
    end)
  end

  test "the shared worker process dies: studies re-attach to its restart and carry on" do
    start_supervised!({SharedWorker, name: :sw_crash})
    opts = [worker: :sw_crash, checkpoint_every: 1, checkpoint_interval: 0, checkpoint_spacing: 0]
    study = start_supervised!({Study, {%{name: "crash"}, @space, opts}})
    {:ok, [t]} = Study.ask(study)
    {:ok, _} = Study.tell(study, t.number, 0.5)
    %{os_pid: os_pid} = Study.info(study)
    # The checkpoint after the tell is taken asynchronously: recovery can only restore the tell
    # once its snapshot has come back (else, on a loaded machine, the kill can beat the export and
    # the tell is rightly reported lost).
    TestSupport.wait_until(
      fn ->
        match?(
          %{"body" => %{"trials" => [%{"state" => "complete"}]}},
          :sys.get_state(study).snapshot
        )
      end,
      30_000
    )

    capture_log(fn ->
      Process.exit(Process.whereis(:sw_crash), :kill)
      TestSupport.wait_until(fn -> not OptunaBridge.Worker.os_alive?(os_pid) end, 30_000)

      TestSupport.wait_until(fn ->
        info = Study.info(study)
        info.status == :ready and info.os_pid not in [nil, os_pid]
      end)
    end)

    assert {:ok, [%{state: :complete}]} = Study.trials(study)
  end
end
