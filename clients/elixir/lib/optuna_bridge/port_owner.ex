defmodule OptunaBridge.PortOwner do
  @moduledoc """
  The process that owns one worker's port, so that nothing a caller waits on ever writes to it.

  Why: `Port.command/2` suspends the writing process while the port is busy (the worker is not
  reading: a long `ask`, a blocked storage call, SIGSTOP). If the study process wrote itself, a
  busy worker would freeze every caller's timeout, `info/1` and `stop/1`. This process takes the
  writes (`write/2` is a plain message send) and may be suspended; the study process is not, so
  timeouts still fire and `stop/1` can kill the worker by OS pid.

  It reports to the process that started it, as `{:worker, owner_pid, event}`:

    * `{:opened, os_pid}` once the port is open;
    * `{:frame, binary}` for each whole frame (framing reassembled here);
    * `{:exit, status}` when the worker exits (then this process ends);
    * `{:start_failed, %OptunaBridge.Error{}}` when the port cannot be opened (then it ends).
  """

  alias OptunaBridge.Worker

  @doc "Starts the owner, linked to the caller, which receives its events."
  @spec start_link(keyword()) :: pid()
  def start_link(opts) do
    parent = self()
    spawn_link(fn -> init(parent, opts) end)
  end

  @doc "Queues one encoded frame for writing. Never blocks."
  @spec write(pid(), iodata()) :: :ok
  def write(owner, frame) do
    send(owner, {:write, frame})
    :ok
  end

  @doc "Closes the worker's stdin (it exits at end of input); the owner ends after its exit."
  @spec close(pid()) :: :ok
  def close(owner) do
    send(owner, :close)
    :ok
  end

  defp init(parent, opts) do
    case Worker.open(opts) do
      {:ok, worker} ->
        send(parent, {:worker, self(), {:opened, worker.os_pid}})
        loop(parent, worker)

      {:error, error} ->
        send(parent, {:worker, self(), {:start_failed, error}})
    end
  end

  defp loop(parent, %Worker{port: port, log_port: log_port} = worker) do
    receive do
      {^log_port, {:data, {:eol, line}}} ->
        Worker.log_line(line, worker.os_pid)
        loop(parent, worker)

      {^log_port, {:data, {:noeol, line}}} ->
        Worker.log_line(line <> "...", worker.os_pid)
        loop(parent, worker)

      {^log_port, {:exit_status, _}} ->
        Worker.remove_fifo(worker)
        loop(parent, %{worker | log_port: nil})

      {:write, frame} ->
        _ = Worker.send_frame(worker, frame)
        loop(parent, worker)

      {^port, {:data, data}} ->
        # Output means the worker runs (after its `2>FIFO`) and `cat` has the FIFO open: its
        # name is no longer needed, so no exit path of this VM can leave it behind.
        worker = forget_fifo(worker)

        case Worker.feed(worker, data) do
          {:frame, frame, worker} ->
            send(parent, {:worker, self(), {:frame, frame}})
            loop(parent, worker)

          {:more, worker} ->
            loop(parent, worker)
        end

      {^port, {:exit_status, status}} ->
        drain_logs(worker)
        send(parent, {:worker, self(), {:exit, status}})

      :close ->
        # After Port.close/1 no data and no exit status arrive: report a clean end ourselves.
        Worker.safe_close(port)
        Worker.remove_fifo(worker)
        send(parent, {:worker, self(), {:exit, 0}})
    end
  end

  defp forget_fifo(%Worker{fifo: nil} = worker), do: worker

  defp forget_fifo(worker) do
    Worker.remove_fifo(worker)
    %{worker | fifo: nil}
  end

  # The worker's last lines (its crash report) arrive just before or after its exit status.
  defp drain_logs(%Worker{log_port: nil} = worker), do: Worker.remove_fifo(worker)

  defp drain_logs(%Worker{log_port: log_port} = worker) do
    receive do
      {^log_port, {:data, {_, line}}} ->
        Worker.log_line(line, worker.os_pid)
        drain_logs(worker)

      {^log_port, {:exit_status, _}} ->
        Worker.remove_fifo(worker)
    after
      500 -> Worker.remove_fifo(worker)
    end
  end
end
