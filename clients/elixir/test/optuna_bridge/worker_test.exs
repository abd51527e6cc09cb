defmodule OptunaBridge.WorkerTest do
  @moduledoc "OptunaBridge.Worker on its own: open, frames, close, kill (real worker)."
  use ExUnit.Case, async: true

  alias OptunaBridge.{Error, TestSupport, Worker}

  test "open, ready, a ping, close: the worker exits by itself" do
    {:ok, worker} = Worker.open(framing: :packet4)
    assert {:frame, ready, worker} = Worker.receive_frame(worker, 30_000)
    assert ready =~ ~s("ready")
    :ok = Worker.send_frame(worker, ~s({"jsonrpc":"2.0","id":1,"method":"ping"}))
    assert {:frame, pong, worker} = Worker.receive_frame(worker, :infinity)
    assert pong =~ "pong"
    assert {:timeout, worker} = Worker.receive_frame(worker, 50)
    assert Worker.close(worker, 30_000) == :exited
    assert {:error, :closed} = Worker.send_frame(worker, "{}")
    refute Worker.os_alive?(worker.os_pid)
    refute Worker.os_alive?(nil)
    assert :ok = Worker.kill_os_pid(nil)
  end

  test "a worker that does not exit in its grace period is killed; an exit is reported" do
    {:ok, worker} = Worker.open([])
    {:frame, _ready, worker} = Worker.receive_frame(worker, 30_000)
    TestSupport.signal(worker.os_pid, "STOP")
    assert Worker.close(worker, 200) == :killed

    {:ok, worker} = Worker.open([])
    {:frame, _ready, worker} = Worker.receive_frame(worker, 30_000)
    :ok = Worker.kill(worker)
    assert {:exit, 137, _} = Worker.receive_frame(worker, 30_000)
  end

  test "a bad framing or a missing interpreter is a start error" do
    assert {:error, %Error{kind: :start_failed}} = Worker.open(python: "/nonexistent/py")
    assert {:error, %Error{kind: :start_failed}} = Worker.open(framing: :xml)
  end
end
