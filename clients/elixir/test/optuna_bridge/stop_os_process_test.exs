defmodule OptunaBridge.StopOsProcessTest do
  @moduledoc "Worker.stop_os_process/2, the one close -> wait -> kill sequence, on plain OS processes."
  use ExUnit.Case, async: true

  alias OptunaBridge.{TestSupport, Worker}

  defp spawn_os(exe, args) do
    port = Port.open({:spawn_executable, System.find_executable(exe)}, [:binary, args: args])
    {:os_pid, os_pid} = Port.info(port, :os_pid)
    {port, os_pid}
  end

  test "a process that exits at the end of its input is closed, not killed" do
    {port, os_pid} = spawn_os("cat", [])

    assert Worker.stop_os_process(os_pid, close: fn -> Port.close(port) end, grace: 30_000) ==
             :exited

    refute Worker.os_alive?(os_pid)
  end

  test "a process that ignores the close is killed after the grace period" do
    {_port, os_pid} = spawn_os("sleep", ["600"])
    started = System.monotonic_time(:millisecond)
    assert Worker.stop_os_process(os_pid, grace: 100) == :killed
    assert System.monotonic_time(:millisecond) - started >= 100
    TestSupport.wait_until(fn -> not Worker.os_alive?(os_pid) end)
  end

  test "no pid (a worker that never opened) has nothing to stop" do
    assert Worker.stop_os_process(nil, close: fn -> :ok end) == :exited
  end
end
