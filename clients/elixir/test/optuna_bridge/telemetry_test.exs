defmodule OptunaBridge.TelemetryTest do
  @moduledoc """
  Telemetry events and Logger metadata. `:telemetry` is the real one when present, otherwise the
  test-only stand-in in test/support/fake_telemetry.ex (the client itself never requires it).
  """
  # handlers are global: not async
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog
  require Logger

  alias OptunaBridge.{Study, TestSupport}

  @space [x: [type: "float", low: 0.0, high: 1.0]]

  setup do
    parent = self()
    id = "test-#{System.unique_integer([:positive])}"

    events = [
      [:optuna_bridge, :request, :start],
      [:optuna_bridge, :request, :stop],
      [:optuna_bridge, :request, :exception],
      [:optuna_bridge, :worker, :exit],
      [:optuna_bridge, :worker, :restart]
    ]

    :telemetry.attach_many(
      id,
      events,
      fn e, m, meta, _ -> send(parent, {:event, e, m, meta}) end,
      nil
    )

    on_exit(fn -> :telemetry.detach(id) end)
    :ok
  end

  test "a request is a span with study, method and result" do
    assert OptunaBridge.Telemetry.enabled?()
    study = start_supervised!({Study, {%{name: "tele"}, @space, []}})
    {:ok, [t]} = Study.ask(study)

    assert_received {:event, [:optuna_bridge, :request, :start], %{system_time: _},
                     %{study: ^study, method: "ask"}}

    assert_received {:event, [:optuna_bridge, :request, :stop], %{duration: d},
                     %{method: "ask", result: :ok}}

    assert d > 0
    {:error, _} = Study.tell(study, t.number + 5, 1.0)

    assert_received {:event, [:optuna_bridge, :request, :stop], _,
                     %{method: "tell", result: {:error, :trial_not_found}}}

    assert_raise ArgumentError, fn -> Study.tell(study, t.number, 1.0, timeout: -1) end
  end

  test "a killed worker emits :exit then :restart, and logs carry study and os_pid" do
    study = start_supervised!({Study, {%{name: "tele-kill"}, @space, [restart_backoff: 10]}})
    :ok = Study.await_ready(study)
    %{os_pid: os_pid} = Study.info(study)

    log =
      capture_log([metadata: [:study, :os_pid]], fn ->
        TestSupport.signal(os_pid, "KILL")
        assert_receive {:event, [:optuna_bridge, :worker, :exit], %{count: 1}, meta}, 5_000
        assert %{study: "tele-kill", os_pid: ^os_pid} = meta

        assert_receive {:event, [:optuna_bridge, :worker, :restart], %{count: 1}, %{restarts: 1}},
                       5_000

        :ok = Study.await_ready(study)
      end)

    assert log =~ "study=tele-kill"
    assert log =~ "os_pid=#{os_pid}"
  end
end

defmodule OptunaBridge.ForwardLogsTest do
  @moduledoc "forward_logs: true: the worker's stderr JSON lines reach Logger at their level."
  use ExUnit.Case, async: false

  import ExUnit.CaptureLog

  alias OptunaBridge.{Study, Worker}

  test "the worker's log lines are logged at their level, with os_pid" do
    log =
      capture_log([metadata: [:os_pid, :source], level: :debug], fn ->
        study =
          start_supervised!(
            {Study,
             {%{name: "fwd"}, [x: [type: "float", low: 0.0, high: 1.0]],
              [forward_logs: true, log_level: "debug"]}}
          )

        :ok = Study.await_ready(study)
        %{os_pid: os_pid} = Study.info(study)
        {:ok, _} = Study.ask(study)
        :ok = Study.stop(study)
        send(self(), {:os_pid, os_pid})
      end)

    assert_received {:os_pid, os_pid}
    assert log =~ "worker: "
    assert log =~ "os_pid=#{os_pid}"
    assert log =~ "source=worker"
    # only the FIFOs this VM made (others may be another run's)
    assert [] == Path.wildcard(Path.join(System.tmp_dir!(), "optuna_bridge_#{System.pid()}_*"))
  end

  test "log_line: levels from the JSON, other lines as warnings" do
    log =
      capture_log(fn ->
        Worker.log_line(~s({"level":"error","event":"boom","study":"s","timestamp":"t"}), 1)
        Worker.log_line("Traceback (most recent call last):", 1)
      end)

    assert log =~ "[error] worker: boom study=\"s\""
    assert log =~ "[warning] worker: Traceback"
    refute log =~ "timestamp"
  end
end
