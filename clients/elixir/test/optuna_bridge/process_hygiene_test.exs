defmodule OptunaBridge.ProcessHygieneTest do
  @moduledoc """
  OS process hygiene (issue 22 item 7, issue 30 item 1): forward_logs FIFOs are unique per VM and
  removed, a stop runs `kill` at most once and works without `kill` on PATH, and a worker's clean
  exit 0 is not a crash. Not async: some tests change PATH, and the FIFO checks look at the FIFOs
  this VM makes in the temp dir.
  """
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog

  alias OptunaBridge.{Study, TestSupport, Worker}

  @space [x: [type: "float", low: 0.0, high: 1.0]]

  defp mkfifo(path) do
    {_, 0} = System.cmd("mkfifo", [path])
    on_exit(fn -> File.rm(path) end)
    path
  end

  # an OS pid that is certainly not running any more: a shell that has exited
  defp dead_os_pid do
    {out, 0} = System.cmd("sh", ["-c", "echo $$"])
    pid = out |> String.trim() |> String.to_integer()
    TestSupport.wait_until(fn -> not Worker.os_alive?(pid) end)
    pid
  end

  defp with_path(path) do
    old = System.get_env("PATH")
    System.put_env("PATH", path)
    on_exit(fn -> System.put_env("PATH", old) end)
  end

  defp ours, do: Path.wildcard(Path.join(System.tmp_dir!(), "optuna_bridge_#{System.pid()}_*"))

  test "forward_logs with foreign FIFOs in the temp dir: started, own FIFO removed, leftovers of a killed VM cleaned" do
    tmp = System.tmp_dir!()
    # what an old client in another VM left: names this VM's counter would also produce
    next = System.unique_integer([:positive])
    for n <- next..(next + 200), do: mkfifo(Path.join(tmp, "optuna_bridge_#{n}.log"))

    dead = mkfifo(Path.join(tmp, "optuna_bridge_#{dead_os_pid()}_0badf00d_1.log"))
    live = mkfifo(Path.join(tmp, "optuna_bridge_1_0badf00d_1.log"))

    log =
      capture_log([level: :debug], fn ->
        study =
          start_supervised!(
            {Study, {%{name: "fwd-leftovers"}, @space, [forward_logs: true, log_level: "debug"]}}
          )

        assert :ok = Study.await_ready(study)
        # the FIFO's name goes once both ends are open (the worker answered)
        assert ours() == []
        {:ok, _} = Study.ask(study)
        :ok = Study.stop(study)
      end)

    assert log =~ "worker: "
    assert ours() == []
    refute File.exists?(dead)
    assert File.exists?(live)
  end

  test "fifo_path: unique per VM and per call" do
    a = Worker.fifo_path("/t")
    b = Worker.fifo_path("/t")
    assert a != b
    assert Path.basename(a) =~ ~r/^optuna_bridge_#{System.pid()}_[0-9a-f]+_\d+\.log$/
  end

  test "stopping a worker that does not exit runs kill once" do
    dir = Path.join(System.tmp_dir!(), "ob_kill_#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    on_exit(fn -> File.rm_rf(dir) end)
    count = Path.join(dir, "count")
    real_kill = System.find_executable("kill")

    File.write!(Path.join(dir, "kill"), """
    #!/bin/sh
    echo "$@" >> #{count}
    exec #{real_kill} "$@"
    """)

    File.chmod!(Path.join(dir, "kill"), 0o755)

    study = start_supervised!({Study, {%{name: "one-kill"}, @space, [grace: 300]}})
    :ok = Study.await_ready(study)
    %{os_pid: os_pid} = Study.info(study)
    # stopped: it cannot read its end of input, so only SIGKILL ends it
    TestSupport.signal(os_pid, "STOP")
    with_path(dir <> ":" <> System.get_env("PATH"))

    :ok = Study.stop(study)
    TestSupport.wait_until(fn -> not Worker.os_alive?(os_pid) end, 30_000)
    assert [_one] = count |> File.read!() |> String.split("\n", trim: true)
  end

  test "without kill on PATH a stop still ends (stdin closed) and nothing crashes" do
    study = start_supervised!({Study, {%{name: "no-kill"}, @space, [grace: 5_000]}})
    :ok = Study.await_ready(study)
    %{os_pid: os_pid} = Study.info(study)
    empty = Path.join(System.tmp_dir!(), "ob_empty_#{System.unique_integer([:positive])}")
    File.mkdir_p!(empty)
    on_exit(fn -> File.rm_rf(empty) end)
    with_path(empty)

    ref = Process.monitor(study)
    :ok = Study.stop(study)
    assert_receive {:DOWN, ^ref, :process, _, _}, 30_000
    TestSupport.wait_until(fn -> not Worker.os_alive?(os_pid) end, 30_000)
  end

  test "a worker that exits 0 (a shutdown request) is not a crash: no error, no restart" do
    Process.flag(:trap_exit, true)
    {:ok, study} = Study.start_link(%{name: "exit-zero"}, @space, [])
    :ok = Study.await_ready(study)

    log =
      capture_log(fn ->
        {:ok, _} = Study.request(study, "shutdown")
        assert_receive {:EXIT, ^study, :normal}, 30_000
      end)

    refute log =~ "[error]"
  end
end
