defmodule OptunaBridge.Study.Server do
  @moduledoc false
  # The study's process (the GenServer behind `OptunaBridge.Study`): admits calls and casts,
  # queues them until the study exists on a worker, runs them, answers each by its deadline, and
  # routes worker events (frames, exits) to the modules that handle them. Its state is a plain
  # map (see `init_state/1`); the other `OptunaBridge.Study.*` modules take and return it.

  use GenServer
  require Logger

  alias OptunaBridge.{Backpressure, CheckpointPolicy, ClientId, Error, Outbox, SharedWorker}
  alias OptunaBridge.{Telemetry, TrialLedger}
  alias OptunaBridge.Study.{Call, Checkpoints, Frames, Restart, Session}

  @impl true
  def init({name, study_json, create, create_json, opts}) do
    case claim(opts[:shared], name) do
      :ok -> init_state({name, study_json, create, create_json, opts})
      {:error, error} -> refuse_start(error)
    end
  end

  # On a shared worker the study name is claimed for this process (one study, one owner). A
  # shared worker that is not running is found out by the attachment, as before.
  def claim(nil, _name), do: :ok

  def claim(shared, name) do
    server =
      case shared do
        {OptunaBridge.Pool, pool, name} -> OptunaBridge.Pool.worker(pool, name)
        server -> server
      end

    SharedWorker.claim(server, name, self())
  catch
    :exit, _ -> :ok
  end

  # `start_link/3` returns `{:error, error}` and this process ends normally, so the exit does not
  # take a linked caller (an iex shell) with it (OTP 26's proc_lib:init_fail/2, by hand).
  def refuse_start(error) do
    :proc_lib.init_ack({:error, error})
    exit(:normal)
  end

  def init_state({name, study_json, create, create_json, opts}) do
    Process.flag(:trap_exit, true)
    Logger.metadata(study: name)
    timeout = Keyword.get(opts, :timeout, 15_000)
    Process.put(:optuna_bridge_timeout, timeout)
    Process.put(:optuna_bridge_study, name)

    state = %{
      study: name,
      study_json: study_json,
      client_json: ClientId.json(opts[:client]),
      create: create,
      create_json: create_json,
      opts: opts,
      shared: opts[:shared] != nil,
      timeout: timeout,
      start_timeout: Keyword.get(opts, :start_timeout, 30_000),
      grace: Keyword.get(opts, :grace, 2_000),
      checkpoint: CheckpointPolicy.new(opts),
      max_restarts: Keyword.get(opts, :max_restarts, 5),
      restart_window: Keyword.get(opts, :restart_window, 60_000),
      restart_backoff: Keyword.get(opts, :restart_backoff, 100),
      status: :starting,
      established: false,
      owner: nil,
      os_pid: nil,
      ready: nil,
      max_frame: nil,
      gen: 0,
      start_timer: nil,
      next_id: 1,
      seq: 0,
      pending: %{},
      calls: %{},
      queue: :queue.new(),
      queued_casts: 0,
      backpressure: Backpressure.new(Keyword.get(opts, :max_pending, Backpressure.default())),
      deleted: false,
      outbox: Outbox.new(),
      ledger: TrialLedger.new(),
      snapshot: nil,
      errors: [],
      restarts: 0,
      restart_times: [],
      last_exit: nil
    }

    {:ok, state, {:continue, :spawn}}
  end

  @impl true
  def handle_continue(:spawn, state), do: {:noreply, Restart.spawn_worker(state)}

  @impl true
  def handle_call({:call, :errors, _t}, _from, state),
    do: {:reply, {:ok, Enum.reverse(state.errors)}, state}

  def handle_call({:call, :info, _t}, _from, state) do
    info = %{
      os_pid: state.os_pid,
      storage: state.ready && state.ready["storage"],
      restarts: state.restarts,
      study: state.study,
      status: state.status,
      checkpoints: state.checkpoint.sent,
      client: if(is_binary(state.opts[:client]), do: state.opts[:client]),
      held: state.ledger.asked |> Map.keys() |> Enum.sort()
    }

    {:reply, {:ok, info}, state}
  end

  def handle_call({:call, {:request, method, _, _, _} = message, timeout}, from, state) do
    if Backpressure.full?(state.backpressure, pending(state)),
      do: {:reply, {:error, %{overloaded(state) | method: method}}, state},
      else: admit_call(message, timeout, from, state)
  end

  def handle_call({:call, message, timeout}, from, state),
    do: admit_call(message, timeout, from, state)

  def admit_call(message, timeout, from, state) do
    ref = make_ref()
    timeout = timeout || state.timeout
    method = Call.call_method(message)
    Logger.metadata(method: method)
    timer = Process.send_after(self(), {:call_timeout, ref, timeout}, timeout)
    call = %{from: from, message: message, method: method, timer: timer, at: now_native()}
    state = publish(%{state | calls: Map.put(state.calls, ref, call)})

    reply =
      if state.status == :ready,
        do: {:noreply, run_call(state, ref)},
        else: {:noreply, %{state | queue: :queue.in(ref, state.queue)}}

    Logger.metadata(method: nil)
    reply
  end

  def now_native, do: System.monotonic_time()

  # A call's frame is written: its queue time (telemetry's `queue_time`) is known.
  def written(state, ref) do
    case state.calls do
      %{^ref => call} ->
        put_in(state.calls[ref], Map.put(call, :queue_time, now_native() - call.at))

      _ ->
        state
    end
  end

  @impl true
  def handle_cast({:tell, number, params_json}, state) do
    cond do
      TrialLedger.lost?(state.ledger, number) ->
        {:noreply, Session.record_error(state, Session.trial_lost(state, number))}

      Backpressure.full?(state.backpressure, pending(state)) ->
        error = %{overloaded(state) | method: "tell", data: %{"number" => number}}
        {:noreply, Session.record_error(state, error)}

      state.status != :ready ->
        queue = :queue.in({:cast, number, params_json}, state.queue)
        {:noreply, publish(%{state | queue: queue, queued_casts: state.queued_casts + 1})}

      true ->
        {:noreply, run_cast(state, number, params_json)}
    end
  end

  def run_cast(state, number, params_json) do
    if TrialLedger.lost?(state.ledger, number) do
      Session.record_error(state, Session.trial_lost(state, number))
    else
      frame = [
        ~s({"jsonrpc":"2.0","method":"tell","params":),
        Frames.with_study(state, params_json, true),
        ?}
      ]

      case Frames.write(state, frame, {:notification, "tell", number}) do
        {:ok, state} ->
          state |> Checkpoints.told(number) |> Checkpoints.after_tell()

        {:error, error, state} ->
          Session.record_error(state, %{
            error
            | method: "tell",
              data: Map.put(error.data, "number", number)
          })
      end
    end
  end

  @impl true
  def handle_info({:worker, owner, event}, %{owner: owner} = state),
    do: worker_event(state, event)

  def handle_info({:worker, _stale_owner, _event}, state), do: {:noreply, state}

  def handle_info({:EXIT, owner, reason}, %{owner: owner} = state) when reason != :normal,
    do:
      Restart.worker_gone(state, "worker port owner exited: #{inspect(reason)}", %{
        "reason" => inspect(reason)
      })

  def handle_info({:call_timeout, ref, timeout}, state) do
    case Map.pop(state.calls, ref) do
      {nil, _} ->
        {:noreply, state}

      {call, calls} ->
        error = Error.client(:timeout, "no reply to #{call.method} within #{timeout} ms")
        GenServer.reply(call.from, {:error, %{error | method: call.method}})
        {:noreply, publish(%{state | calls: calls})}
    end
  end

  def handle_info({:start_timeout, gen}, %{gen: gen, status: status} = state)
      when status in [:starting, :establishing] do
    Restart.kill_worker(state)

    error =
      Error.client(:start_failed, "the worker was not ready within #{state.start_timeout} ms")

    Restart.start_failed(state, error)
  end

  def handle_info(:restart, %{status: :restarting} = state) do
    Telemetry.execute([:optuna_bridge, :worker, :restart], %{count: 1}, %{
      study: state.study,
      restarts: state.restarts
    })

    {:noreply, Restart.spawn_worker(state)}
  end

  def handle_info(:checkpoint, state) do
    {action, policy} = CheckpointPolicy.fired(state.checkpoint, Checkpoints.now_ms())
    {:noreply, Checkpoints.checkpoint_action(%{state | checkpoint: policy}, action)}
  end

  def handle_info(_stale, state), do: {:noreply, state}

  @impl true
  def terminate(_reason, state) do
    fail_all(state, Error.client(:worker_stopped, "the study was stopped"))
    Restart.close_worker(state)
    :ok
  end

  def worker_event(state, {:opened, os_pid}) do
    Logger.metadata(os_pid: os_pid)
    {:noreply, %{state | os_pid: os_pid}}
  end

  def worker_event(state, {:frame, frame}) do
    {:noreply, Frames.handle_frame(state, frame)}
  catch
    {:stop, reason, state} -> {:stop, reason, state}
  end

  def worker_event(state, {:start_failed, error}) do
    Restart.start_failed(%{state | owner: nil}, error)
  end

  # Exit 0 is the worker's own clean end (a `shutdown` request, or the end of its input): not a
  # crash, so nothing is restarted; the study process ends normally and says why.
  def worker_event(%{established: true} = state, {:exit, 0}) do
    Logger.info("optuna_bridge study #{inspect(state.study)}: the worker exited 0; stopping")
    fail_all(state, Error.client(:worker_stopped, "the worker exited (status 0)"))
    {:stop, :normal, %{state | owner: nil, os_pid: nil, calls: %{}, queue: :queue.new()}}
  end

  def worker_event(state, {:exit, status}) do
    Restart.worker_gone(state, "worker exited with status #{status}", %{"exit_status" => status})
  end

  # What this study holds for its worker (OptunaBridge.Backpressure): calls, queued casts, and
  # frames its own port owner has not written yet.
  def pending(state) do
    backlog = if state.shared, do: 0, else: Backpressure.backlog(state.owner)
    map_size(state.calls) + state.queued_casts + backlog
  end

  def publish(state) do
    Backpressure.publish(state.backpressure, pending(state))
    state
  end

  def overloaded(state),
    do: Backpressure.overloaded(pending(state), state.backpressure.max)

  def run_call(state, {:cast, number, json}), do: run_cast(state, number, json)

  def run_call(state, ref) do
    case state.calls[ref] do
      nil ->
        state

      %{message: :await_ready} ->
        reply_call(state, ref, {:ok, :ready})

      %{message: {:request, _, _, _, :checkpoint_now}} ->
        if Checkpoints.memory?(state),
          do: run_request(state, ref),
          else: reply_call(state, ref, {:ok, :durable})

      %{message: {:request, method, _json, _add_study?, {verb, number}}}
      when verb in [:tell, :renew] ->
        if TrialLedger.lost?(state.ledger, number),
          do:
            reply_call(
              state,
              ref,
              {:error, %{Session.trial_lost(state, number) | method: method}}
            ),
          else: run_request(state, ref)

      %{} ->
        run_request(state, ref)
    end
  end

  def run_request(state, ref) do
    {:request, method, json, add_study?, kind} = state.calls[ref].message
    # the export that is a checkpoint holds every frame written before it
    kind = if kind == :checkpoint_now, do: {:checkpoint_now, state.seq + 1}, else: kind

    json = if method == "ask", do: ClientId.with_client(json, state.client_json), else: json

    case Frames.send_request(
           state,
           method,
           Frames.with_study(state, json, add_study?),
           {:call, ref, kind}
         ) do
      {:ok, state} ->
        state = written(state, ref)

        case kind do
          {:tell, number} -> state |> Checkpoints.told(number) |> Checkpoints.after_tell()
          _ -> state
        end

      {:error, error, state} ->
        reply_call(state, ref, {:error, %{error | method: method}})
    end
  end

  def reply_call(state, ref, reply) do
    case Map.pop(state.calls, ref) do
      {nil, _} ->
        state

      {call, calls} ->
        Process.cancel_timer(call.timer)

        if queue_time = call[:queue_time],
          do: GenServer.reply(call.from, {:queued, queue_time, reply}),
          else: GenServer.reply(call.from, reply)

        publish(%{state | calls: calls})
    end
  end

  def fail_pending(state, error) do
    state =
      Enum.reduce(state.pending, state, fn
        {_id, {:call, ref, _kind}}, state ->
          reply_call(
            state,
            ref,
            {:error, %{error | method: state.calls[ref] && state.calls[ref].method}}
          )

        _, state ->
          state
      end)

    %{state | pending: %{}}
  end

  def fail_all(state, error) do
    for {_ref, call} <- state.calls do
      Process.cancel_timer(call.timer)
      GenServer.reply(call.from, {:error, %{error | method: call.method}})
    end

    :ok
  end
end
