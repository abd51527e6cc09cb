defmodule OptunaBridge.SharedWorker do
  @moduledoc """
  One worker process serving many studies (the protocol already serves many studies per
  worker): each extra study costs the worker kilobytes, not a ~60 MB Python process.

      {:ok, shared} = OptunaBridge.SharedWorker.start_link(name: MyApp.Optuna)
      {:ok, a} = OptunaBridge.Study.start_link(%{name: "a"}, space, worker: MyApp.Optuna)
      {:ok, b} = OptunaBridge.Study.start_link(%{name: "b"}, space, worker: MyApp.Optuna)

  Why it is safe: each `OptunaBridge.Study` keeps all its guarantees (ledger, checkpoints, trial
  identity, timeouts) because it talks to an **attachment**, a small process that behaves like
  its own `OptunaBridge.PortOwner`: it takes the study's frames and hands it the frames meant for
  it. This process writes every study's frames to the one port in arrival order and routes what
  comes back:

    * a reply, by its `id` (studies on a shared worker number their requests with
      VM-unique integers, so ids never collide and frames pass through unchanged);
    * an `error` notification or an id-`null` error, by the same rules as
      `OptunaBridge.Outbox` applied to the worker's single stream (the worker answers frames
      strictly in order), to the study that wrote the frame;
    * the `ready` notification, to every study (kept for those that attach later).

  When the worker exits, every attached study is told (as if its own worker had exited) and
  rebuilds its study as usual; the first study to come back spawns a new worker. A worker that
  announces no `ready` within `:start_timeout` ms is killed. Detaching (a study's `stop/2`) never
  ends the worker; stopping this process does (stdin closed, then SIGKILL after `:grace` ms).

  Options: those of `OptunaBridge.Worker.open/1` (`:python`, `:worker_args`, `:framing`,
  `:log_level`, `:env`, `:cd`) plus `:name`, `:start_timeout` (30 000), `:grace` (2 000).
  Studies on one shared worker share its storage (`--storage` in `:worker_args`).
  """

  use GenServer
  require Logger

  alias OptunaBridge.{Error, JSON, Outbox, PortOwner, RPC, Worker}

  @doc "Starts the shared worker process (the Python worker is spawned when a study attaches)."
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts \\ []) do
    opts = OptunaBridge.Wire.validate_options!(opts, options())
    GenServer.start_link(__MODULE__, opts, Keyword.take(opts, [:name]))
  end

  @doc false
  @spec options() :: [atom()]
  def options,
    do: [
      :name,
      :python,
      :worker_args,
      :framing,
      :log_level,
      :forward_logs,
      :env,
      :cd,
      :start_timeout,
      :grace
    ]

  @doc false
  @spec child_spec(keyword()) :: Supervisor.child_spec()
  def child_spec(opts) do
    %{
      id: Keyword.get(opts, :id, __MODULE__),
      start: {__MODULE__, :start_link, [Keyword.delete(opts, :id)]},
      shutdown: Keyword.get(opts, :grace, 2_000) + 2_000
    }
  end

  @doc """
  Attaches the calling study: returns an attachment pid, linked to the caller, that takes
  `PortOwner.write/2` and `PortOwner.close/1` and sends `{:worker, attachment, event}` to the
  caller, exactly as an `OptunaBridge.PortOwner` does.
  """
  @spec attach(GenServer.server()) :: pid()
  def attach(shared) do
    study = self()
    spawn_link(fn -> attachment(shared, study) end)
  end

  @doc """
  Claims the study name `name` for the `OptunaBridge.Study` process `owner`: `:ok`, or
  `{:error, %Error{kind: :study_exists}}` when another live study process already serves that
  name here. One study, one owner: two processes on one study would each rebuild it after a
  crash and neither could know of the other's lost results. The claim ends with its owner.
  """
  @spec claim(GenServer.server(), String.t(), pid()) :: :ok | {:error, Error.t()}
  def claim(shared, name, owner), do: GenServer.call(shared, {:claim, name, owner})

  @doc "The current worker: `%{os_pid:, attached:, ready:}` (for tests and measurements)."
  @spec info(GenServer.server()) :: map()
  def info(shared), do: GenServer.call(shared, :info)

  # ------------------------------------------------------------------------ the attachment

  defp attachment(shared, study) do
    case GenServer.whereis(shared) do
      pid when is_pid(pid) ->
        ref = Process.monitor(pid)
        send(pid, {:attach, self()})
        attachment_loop(pid, ref, study)

      nil ->
        error = Error.client(:start_failed, "the shared worker #{inspect(shared)} is not running")
        send(study, {:worker, self(), {:start_failed, error}})
    end
  end

  defp attachment_loop(shared, ref, study) do
    receive do
      {:write, frame} ->
        send(shared, {:write, self(), frame})
        attachment_loop(shared, ref, study)

      :close ->
        send(shared, {:detach, self()})
        send(study, {:worker, self(), {:exit, 0}})

      {:shared, {:exit, _} = event} ->
        send(study, {:worker, self(), event})

      {:shared, {:start_failed, _} = event} ->
        send(study, {:worker, self(), event})

      {:shared, event} ->
        send(study, {:worker, self(), event})
        attachment_loop(shared, ref, study)

      {:DOWN, ^ref, :process, _, reason} ->
        send(study, {:worker, self(), {:exit, -1}})
        Logger.warning("optuna_bridge: shared worker process ended: #{inspect(reason)}")
    end
  end

  # ------------------------------------------------------------------------ the server

  @impl true
  def init(opts) do
    Process.flag(:trap_exit, true)

    {:ok,
     %{
       opts: opts,
       owner: nil,
       os_pid: nil,
       ready: nil,
       max_frame: nil,
       attached: %{},
       owners: %{},
       ids: %{},
       outbox: Outbox.new(),
       seq: 0
     }}
  end

  @impl true
  def handle_call({:claim, name, owner}, _from, state) do
    case state.owners[name] do
      {other, _ref} when other != owner ->
        error =
          Error.client(
            :study_exists,
            "study #{inspect(name)} already has an OptunaBridge.Study process on this shared " <>
              "worker (#{inspect(other)}): one study, one owner; use that process",
            %{"study" => name}
          )

        {:reply, {:error, %{error | method: "create"}}, state}

      {^owner, _ref} ->
        {:reply, :ok, state}

      nil ->
        ref = Process.monitor(owner)
        {:reply, :ok, %{state | owners: Map.put(state.owners, name, {owner, ref})}}
    end
  end

  def handle_call(:info, _from, state) do
    {:reply,
     %{os_pid: state.os_pid, attached: map_size(state.attached), ready: state.ready != nil},
     state}
  end

  @impl true
  def handle_info({:attach, att}, state) do
    Process.link(att)
    state = %{state | attached: Map.put(state.attached, att, true)}
    state = if state.owner, do: state, else: spawn_worker(state)
    if state.os_pid, do: send(att, {:shared, {:opened, state.os_pid}})
    if state.ready, do: send(att, {:shared, {:frame, state.ready}})
    {:noreply, state}
  end

  def handle_info({:detach, att}, state), do: {:noreply, detach(state, att)}

  def handle_info({:write, att, frame}, %{owner: owner} = state) when owner != nil do
    if Map.has_key?(state.attached, att) do
      {:noreply, write(state, att, frame)}
    else
      {:noreply, state}
    end
  end

  def handle_info({:write, _att, _frame}, state), do: {:noreply, state}

  def handle_info({:worker, owner, event}, %{owner: owner} = state),
    do: worker_event(state, event)

  def handle_info({:worker, _stale, _event}, state), do: {:noreply, state}

  def handle_info({:EXIT, owner, reason}, %{owner: owner} = state) when owner != nil,
    do: worker_gone(state, {:exit, -1}, "port owner exited: #{inspect(reason)}")

  def handle_info({:EXIT, att, _reason}, state), do: {:noreply, detach(state, att)}

  def handle_info({:start_timeout, owner}, %{owner: owner, ready: nil} = state)
      when owner != nil do
    Worker.kill_os_pid(state.os_pid)
    Process.exit(owner, :kill)
    worker_gone(state, {:exit, -1}, "no ready within #{start_timeout(state)} ms: killed")
  end

  def handle_info({:DOWN, ref, :process, owner, _}, state) do
    owners = Map.reject(state.owners, fn {_name, claim} -> claim == {owner, ref} end)
    {:noreply, %{state | owners: owners}}
  end

  def handle_info(_stale, state), do: {:noreply, state}

  @impl true
  def terminate(_reason, %{owner: nil}), do: :ok

  def terminate(_reason, state) do
    close = fn -> PortOwner.close(state.owner) end

    Worker.stop_os_process(state.os_pid,
      close: close,
      grace: Keyword.get(state.opts, :grace, 2_000)
    )

    :ok
  end

  defp start_timeout(state), do: Keyword.get(state.opts, :start_timeout, 30_000)

  defp spawn_worker(state) do
    owner = PortOwner.start_link(Keyword.drop(state.opts, [:name, :start_timeout, :grace]))
    Process.send_after(self(), {:start_timeout, owner}, start_timeout(state))
    %{state | owner: owner, os_pid: nil, ready: nil, outbox: Outbox.new(), ids: %{}}
  end

  defp detach(state, att) do
    Process.unlink(att)
    %{state | attached: Map.delete(state.attached, att)}
  end

  defp broadcast(state, event) do
    Enum.each(state.attached, fn {att, _} -> send(att, {:shared, event}) end)
  end

  defp worker_event(state, {:opened, os_pid}) do
    broadcast(state, {:opened, os_pid})
    {:noreply, %{state | os_pid: os_pid}}
  end

  defp worker_event(state, {:frame, frame}), do: {:noreply, route(state, frame)}

  defp worker_event(state, {:exit, status}),
    do: worker_gone(state, {:exit, status}, "exited with status #{status}")

  defp worker_event(state, {:start_failed, error}) do
    broadcast(state, {:start_failed, error})
    {:noreply, %{state | owner: nil, os_pid: nil, attached: %{}}}
  end

  # Every attached study is told; attachments end on an exit, so the studies re-attach when they
  # restart (and the first one spawns the next worker).
  defp worker_gone(state, event, message) do
    Logger.error("optuna_bridge shared worker #{inspect(state.os_pid)}: #{message}")
    broadcast(state, event)
    Enum.each(state.attached, fn {att, _} -> Process.unlink(att) end)

    {:noreply,
     %{state | owner: nil, os_pid: nil, ready: nil, attached: %{}, outbox: Outbox.new(), ids: %{}}}
  end

  defp write(state, att, frame) do
    binary = IO.iodata_to_binary(frame)
    PortOwner.write(state.owner, binary)
    seq = state.seq + 1

    {entry, ids} =
      case request_id(binary) do
        {:ok, id} ->
          {{:request, seq, id, byte_size(binary)}, Map.put(state.ids, id, att)}

        :notification ->
          {{:notification, seq, notification_method(binary), att, byte_size(binary)}, state.ids}
      end

    %{state | seq: seq, ids: ids, outbox: Outbox.push(state.outbox, entry)}
  end

  # Studies write `{"jsonrpc":"2.0","id":N,...` for requests and `{"jsonrpc":"2.0","method":...`
  # for notifications (`OptunaBridge.Study`'s frame builders).
  defp request_id(<<"{\"jsonrpc\":\"2.0\",\"id\":", rest::binary>>) do
    case Integer.parse(rest) do
      {id, _} -> {:ok, id}
      :error -> :notification
    end
  end

  defp request_id(_), do: :notification

  defp notification_method(<<"{\"jsonrpc\":\"2.0\",\"method\":\"", rest::binary>>) do
    [method | _] = String.split(rest, "\"", parts: 2)
    method
  end

  defp notification_method(_), do: nil

  defp route(state, frame) do
    case JSON.decode(frame) do
      {:ok, decoded} -> route(state, frame, RPC.classify(decoded))
      {:error, _} -> state
    end
  end

  defp route(state, frame, {:reply, id, _outcome}) do
    {_settled, outbox} = Outbox.reply(state.outbox, id)
    {att, ids} = Map.pop(state.ids, id)
    if att, do: send(att, {:shared, {:frame, frame}})
    %{state | outbox: outbox, ids: ids}
  end

  defp route(state, frame, {:notification, "ready", params}) when is_map(params) do
    broadcast(state, {:frame, frame})
    %{state | ready: frame, max_frame: params["max_frame_bytes"]}
  end

  defp route(state, frame, {:notification, "error", %Error{method: method}}) do
    case Outbox.notification_error(state.outbox, method) do
      {{:notification, _, _, att, _}, outbox} ->
        send(att, {:shared, {:frame, frame}})
        %{state | outbox: outbox}

      {nil, _} ->
        state
    end
  end

  defp route(state, frame, {:unattributed_error, error}) do
    case Outbox.null_error(state.outbox, error.kind, state.max_frame) do
      {{:request, _, id, _}, outbox} ->
        {att, ids} = Map.pop(state.ids, id)
        if att, do: send(att, {:shared, {:frame, frame}})
        %{state | outbox: outbox, ids: ids}

      {{:notification, _, _, att, _}, outbox} ->
        send(att, {:shared, {:frame, frame}})
        %{state | outbox: outbox}

      {nil, _} ->
        state
    end
  end

  defp route(state, _frame, _other), do: state
end
