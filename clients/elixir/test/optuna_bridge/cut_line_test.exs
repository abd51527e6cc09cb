defmodule OptunaBridge.CutLineTest do
  @moduledoc """
  A worker that exits in the middle of a line (PROTOCOL.md, "Framing": a last line without its
  newline at end of output is no frame) leaves no frame behind: the cut bytes are dropped, the
  exit is reported (issue 30).
  """
  use ExUnit.Case, async: true

  alias OptunaBridge.{Framing, Worker}

  @ready ~s({"jsonrpc":"2.0","method":"ready","params":{"protocol":1,"worker":"0",) <>
           ~s("optuna":"0","pid":1,"storage":"memory","framing":"line","max_frame_bytes":1000}})

  @tag :tmp_dir
  test "an unterminated last line at exit is dropped, not decoded", %{tmp_dir: dir} do
    script = Path.join(dir, "cut_worker")

    File.write!(script, """
    #!/bin/sh
    printf '%s\\n' '#{@ready}'
    read -r line
    printf '%s' '{"jsonrpc":"2.0","id":1,"result":{"pong":tr'
    """)

    File.chmod!(script, 0o755)
    {:ok, worker} = Worker.open(python: script)
    assert {:frame, ready, worker} = Worker.receive_frame(worker, 30_000)
    assert ready =~ ~s("ready")
    :ok = Worker.send_frame(worker, ~s({"jsonrpc":"2.0","id":1,"method":"ping"}))
    assert {:exit, 0, worker} = Worker.receive_frame(worker, 30_000)
    # Whatever of the cut line the port still delivers is a piece, never a whole line.
    port = worker.port

    receive do
      {^port, {:data, data}} -> assert {:more, _} = Framing.feed(:line, worker.buffer, data)
    after
      100 -> :ok
    end
  end

  test "pieces of a line are never a frame until its end arrives" do
    assert {:more, buffer} = Framing.feed(:line, [], {:noeol, ~s({"a")})
    assert {:more, _} = Framing.feed(:line, buffer, {:noeol, ":1"})
  end
end
