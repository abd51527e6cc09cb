defmodule OptunaBridge.Study do
  @moduledoc """
  One Optuna study, served by one worker process that this GenServer owns through a port.

      {:ok, study} =
        OptunaBridge.Study.start_link(
          %{name: "mnist", direction: "maximize", sampler: %{type: "tpe", seed: 42}},
          %{lr: [type: "float", low: 1.0e-5, high: 0.1, log: true],
            dropout: [type: "categorical", choices: [0.1, 0.2]]},
          framing: :packet4
        )

      {:ok, [%{number: n, params: params}]} = OptunaBridge.Study.ask(study)
      :ok = OptunaBridge.Study.tell(study, n, train(params))
      {:ok, best} = OptunaBridge.Study.best_trial(study)

  `start_link/3` returns only once the worker has said `ready` and the study exists, so a bad
  search space is an `{:error, %OptunaBridge.Error{kind: :invalid_params}}` from `start_link`.

  Requests carry ids and wait in a pending map, so calls from many processes are pipelined to the
  worker and answered as replies arrive. Errors are `{:error, %OptunaBridge.Error{}}`.

  ## Crash recovery

  When the worker exits (`{port, {:exit_status, n}}`), every pending caller gets
  `{:error, %OptunaBridge.Error{kind: :worker_crashed}}` at once, then a new worker is started and
  the study rebuilt before the next call is served: on a durable storage (`ready.storage` is not
  `"memory"`) with `create` + `load_if_exists: true`; in memory from the last snapshot, which
  this process keeps by calling `export` after every `:checkpoint_every` tells and restores with
  `import` (`overwrite: true`). Tells after the last finished export are lost with the worker.

  ## Options

    * `:python` — absolute path of the interpreter (default: `$OPTUNA_BRIDGE_PYTHON`, else the
      repository's `.venv/bin/python`).
    * `:worker_args` — extra worker arguments, e.g. `["--storage", "sqlite:////tmp/s.db"]`.
    * `:framing` — `:line` (default; port `{:line, 65_536}`) or `:packet4` (port `{:packet, 4}`).
    * `:timeout` — ms a call waits for its reply (default 15 000) before
      `{:error, %OptunaBridge.Error{kind: :timeout}}`.
    * `:start_timeout` — ms to wait for a worker's `ready` and the study (default 30 000).
    * `:checkpoint_every` — export a snapshot after this many tells (default 1; 0 disables).
      Only for in-memory storage.
    * `:keep` — when true, `terminate/2` leaves the study in the storage (default false: it is
      deleted).
    * `:grace` — ms a stopping worker gets to exit before it is killed with SIGKILL (default 2 000).
    * `:name` — registers the GenServer under this name.
  """

  use GenServer
  require Logger

  alias OptunaBridge.{Error, JSON, RPC, Wire, Worker}

  @max_errors 100
  @protocol 1

  @type study :: GenServer.server()
  @type result(t) :: {:ok, t} | {:error, Error.t()}

  # -------------------------------------------------------------------------------------- API

  @doc "Starts the worker, waits for `ready`, and creates the study. See the module doc."
  @spec start_link(map() | keyword(), map() | keyword(), keyword()) :: GenServer.on_start()
  def start_link(study_config, search_space, opts \\ []) do
    {gen_opts, opts} = Keyword.split(opts, [:name])
    GenServer.start_link(__MODULE__, {study_config, search_space, opts}, gen_opts)
  end

  @doc """
  Like `start_link/3` but not linked to the caller: a failed start is only the return value
  `{:error, %OptunaBridge.Error{}}` (with `start_link/3` the caller also gets that exit signal,
  as with any `GenServer` whose `init/1` stops).
  """
  @spec start(map() | keyword(), map() | keyword(), keyword()) :: GenServer.on_start()
  def start(study_config, search_space, opts \\ []) do
    {gen_opts, opts} = Keyword.split(opts, [:name])
    GenServer.start(__MODULE__, {study_config, search_space, opts}, gen_opts)
  end

  @doc """
  A child spec for `{OptunaBridge.Study, {study_config, search_space, opts}}`. It is `:transient`
  (a `stop/1` is final; a crash is restarted) and its shutdown leaves room for `:grace`.
  """
  @spec child_spec({map() | keyword(), map() | keyword(), keyword()}) :: Supervisor.child_spec()
  def child_spec({study_config, search_space, opts}) do
    name = Wire.object(study_config)["name"]

    %{
      id: {__MODULE__, name},
      start: {__MODULE__, :start_link, [study_config, search_space, opts]},
      restart: :transient,
      shutdown: Keyword.get(opts, :grace, 2_000) * 2 + 1_000
    }
  end

  @doc """
  Asks for `n` new trials: `{:ok, [%{number: 0, params: %{"lr" => 0.01}}]}`. Options:
  `:fixed_params` and `:search_space` (as in the protocol's `ask`).
  """
  @spec ask(study(), pos_integer(), keyword()) :: result([%{number: integer(), params: map()}])
  def ask(study, n \\ 1, opts \\ []) do
    extra = opts |> Keyword.take([:fixed_params, :search_space]) |> Map.new()

    extra =
      if space = extra[:search_space],
        do: Map.put(extra, :search_space, Wire.search_space(space)),
        else: extra

    call(study, "ask", Map.put(extra, :n, n), fn %{"trials" => trials} ->
      {:ok, Enum.map(trials, &Wire.asked/1)}
    end)
  end

  @doc """
  Tells a trial's result without waiting (a JSON-RPC notification). A failure is not returned:
  the worker reports it with an `error` notification, which is logged and kept for `errors/1`.
  `value` is a number, a list (multi-objective) or `nil` with `state: "pruned" | "fail"`.
  Options: `:state`, `:user_attrs`, `:skip_if_finished`.
  """
  @spec tell(study(), non_neg_integer(), number() | [number()] | nil, keyword()) :: :ok
  def tell(study, number, value, opts \\ []) do
    GenServer.cast(study, {:tell, number, value, opts})
  end

  @doc "Like `tell/4`, but waits: `{:ok, %{number: 0, state: :complete, values: [0.5]}}`."
  @spec tell_sync(study(), non_neg_integer(), number() | [number()] | nil, keyword()) ::
          result(map())
  def tell_sync(study, number, value, opts \\ []) do
    GenServer.call(study, {:tell_sync, number, value, opts}, :infinity)
  end

  @doc "Reports an intermediate value: `{:ok, should_prune?}`."
  @spec report(study(), non_neg_integer(), non_neg_integer(), number()) :: result(boolean())
  def report(study, number, step, value) do
    call(study, "report", %{number: number, step: step, value: value}, fn result ->
      {:ok, result["should_prune"]}
    end)
  end

  @doc "The best trial (the first of the Pareto front for several objectives)."
  @spec best_trial(study()) :: result(Wire.trial())
  def best_trial(study) do
    with {:ok, [best | _]} <- best_trials(study), do: {:ok, best}
  end

  @doc "The best trial in a list, or the Pareto front for several objectives."
  @spec best_trials(study()) :: result([Wire.trial()])
  def best_trials(study), do: call(study, "best", %{}, &trials_result/1)

  @doc "All trials, or those in `states: [\"complete\", ...]`."
  @spec trials(study(), keyword()) :: result([Wire.trial()])
  def trials(study, opts \\ []) do
    call(study, "trials", opts |> Keyword.take([:states]) |> Map.new(), &trials_result/1)
  end

  @doc "The study's snapshot (the worker's `export`), as decoded JSON."
  @spec export(study()) :: result(map())
  def export(study), do: call(study, "export", %{}, fn result -> {:ok, result["snapshot"]} end)

  @doc """
  Any method, with these params sent as they are (no `study` added): the raw decoded result.
  """
  @spec request(study(), String.t(), map()) :: result(JSON.value())
  def request(study, method, params \\ %{}) do
    GenServer.call(study, {:request, method, params, false, &{:ok, &1}}, :infinity)
  end

  @doc "Errors reported by the worker for failed notifications (`tell/4`), oldest first."
  @spec errors(study()) :: [Error.t()]
  def errors(study), do: GenServer.call(study, :errors)

  @doc "The current worker: `%{os_pid:, storage:, restarts:, study:}`."
  @spec info(study()) :: map()
  def info(study), do: GenServer.call(study, :info)

  @doc """
  Stops the study: deletes it (unless `keep: true`), closes the worker's stdin and, if the
  worker does not exit within `:grace` ms, kills its OS process.
  """
  @spec stop(study()) :: :ok
  def stop(study), do: GenServer.stop(study, :normal, :infinity)

  defp call(study, method, params, transform) do
    GenServer.call(study, {:request, method, params, true, transform}, :infinity)
  end

  defp trials_result(%{"trials" => trials}), do: {:ok, Enum.map(trials, &Wire.trial/1)}

  # -------------------------------------------------------------------------------- callbacks

  @impl true
  def init({study_config, search_space, opts}) do
    Process.flag(:trap_exit, true)
    create = Wire.create_params(study_config, search_space)

    state = %{
      worker: nil,
      study: create["study"],
      create: create,
      opts: opts,
      timeout: Keyword.get(opts, :timeout, 15_000),
      start_timeout: Keyword.get(opts, :start_timeout, 30_000),
      checkpoint_every: Keyword.get(opts, :checkpoint_every, 1),
      keep: Keyword.get(opts, :keep, false),
      grace: Keyword.get(opts, :grace, 2_000),
      ready: nil,
      next_id: 1,
      pending: %{},
      sync: %{},
      snapshot: nil,
      tells: 0,
      errors: [],
      restarts: 0
    }

    case start_worker(state, :init) do
      {:ok, state} -> {:ok, state}
      {:error, error} -> {:stop, error}
    end
  end

  @impl true
  def handle_call({:request, method, params, add_study?, transform}, from, state) do
    params = if add_study?, do: Map.put(params, :study, state.study), else: params
    {:noreply, send_request(state, method, params, {:call, from, method, transform})}
  end

  def handle_call({:tell_sync, number, value, opts}, from, state) do
    params = Wire.tell_params(state.study, number, value, opts)
    transform = &{:ok, Wire.trial(&1)}
    state = send_request(state, "tell", params, {:call, from, "tell", transform})
    {:noreply, after_tell(state)}
  end

  def handle_call(:errors, _from, state), do: {:reply, Enum.reverse(state.errors), state}

  def handle_call(:info, _from, state) do
    info = %{
      os_pid: state.worker.os_pid,
      storage: state.ready["storage"],
      restarts: state.restarts,
      study: state.study
    }

    {:reply, info, state}
  end

  @impl true
  def handle_cast({:tell, number, value, opts}, state) do
    frame = RPC.notification("tell", Wire.tell_params(state.study, number, value, opts))

    case write(state, frame) do
      :ok ->
        {:noreply, after_tell(state)}

      {:error, error} ->
        {:noreply, dispatch(state, {:notification, "error", %{error | method: "tell"}})}
    end
  end

  @impl true
  def handle_info({port, {:data, data}}, %{worker: %{port: port}} = state) do
    case Worker.feed(state.worker, data) do
      {:frame, frame, worker} -> {:noreply, handle_frame(%{state | worker: worker}, frame)}
      {:more, worker} -> {:noreply, %{state | worker: worker}}
    end
  end

  def handle_info({port, {:exit_status, status}}, %{worker: %{port: port}} = state) do
    worker_exited(state, "worker exited with status #{status}", %{"exit_status" => status})
  end

  def handle_info({:EXIT, port, reason}, %{worker: %{port: port}} = state)
      when reason != :normal do
    worker_exited(state, "worker port closed: #{inspect(reason)}", %{"reason" => inspect(reason)})
  end

  def handle_info({:call_timeout, id}, state) do
    case Map.pop(state.pending, id) do
      {{:call, from, method, _transform, _timer}, pending} ->
        error = Error.client(:timeout, "no reply to #{method} within #{state.timeout} ms")
        GenServer.reply(from, {:error, %{error | method: method}})
        {:noreply, %{state | pending: pending}}

      _ ->
        {:noreply, state}
    end
  end

  def handle_info(_stale, state), do: {:noreply, state}

  @impl true
  def terminate(_reason, %{worker: nil}), do: :ok

  def terminate(_reason, state) do
    state =
      if state.keep do
        state
      else
        {_outcome, state} = sync_request(state, "delete", %{study: state.study}, state.grace)
        state
      end

    fail_pending(state, Error.client(:worker_stopped, "the study was stopped"))
    Worker.close(state.worker, state.grace)
    :ok
  end

  # ------------------------------------------------------------------------- worker lifecycle

  defp start_worker(state, mode) do
    with {:ok, worker} <- Worker.open(state.opts) do
      state = %{state | worker: worker, ready: nil, sync: %{}}

      with {:ok, state} <- await_ready(state),
           {:ok, state} <- establish(state, mode) do
        {:ok, state}
      else
        {:error, error, state} ->
          Worker.close(state.worker, 0)
          {:error, error}
      end
    end
  end

  defp await_ready(state) do
    case await(state, & &1.ready, Worker.deadline(state.start_timeout)) do
      {:ok, %{ready: %{"protocol" => @protocol}} = state} ->
        {:ok, state}

      {:ok, state} ->
        {:error,
         Error.client(
           :start_failed,
           "worker speaks protocol #{inspect(state.ready["protocol"])}",
           state.ready
         ), state}

      {:exit, status, state} ->
        {:error, Error.client(:start_failed, "worker exited with status #{status} before ready"),
         state}

      {:timeout, state} ->
        {:error, Error.client(:start_failed, "no ready frame within #{state.start_timeout} ms"),
         state}
    end
  end

  defp establish(state, mode) do
    {method, params} = establish_request(state, mode)

    case sync_request(state, method, params, state.start_timeout) do
      {{:ok, _result}, state} -> {:ok, state}
      {{:error, error}, state} -> {:error, %{error | method: method}, state}
    end
  end

  defp establish_request(state, :init), do: {"create", state.create}

  defp establish_request(%{ready: %{"storage" => storage}} = state, :restart)
       when storage != "memory",
       do: {"create", Map.put(state.create, "load_if_exists", true)}

  defp establish_request(%{snapshot: nil} = state, :restart), do: {"create", state.create}

  defp establish_request(state, :restart),
    do: {"import", %{snapshot: state.snapshot, overwrite: true}}

  defp worker_exited(state, message, data) do
    Logger.error("optuna_bridge study #{inspect(state.study)}: #{message}; restarting the worker")
    fail_pending(state, Error.client(:worker_crashed, message, data))
    state = %{state | pending: %{}, restarts: state.restarts + 1}

    case start_worker(state, :restart) do
      {:ok, state} -> {:noreply, state}
      {:error, error} -> {:stop, {:worker_restart_failed, error}, %{state | worker: nil}}
    end
  end

  defp fail_pending(state, error) do
    for {_id, {:call, from, method, _transform, timer}} <- state.pending do
      Process.cancel_timer(timer)
      GenServer.reply(from, {:error, %{error | method: method}})
    end

    :ok
  end

  # ------------------------------------------------------------------------- request plumbing

  defp send_request(state, method, params, waiter) do
    id = state.next_id
    state = %{state | next_id: id + 1}

    case write(state, RPC.request(id, method, params)) do
      :ok ->
        waiter =
          case waiter do
            {:call, from, method, transform} ->
              {:call, from, method, transform,
               Process.send_after(self(), {:call_timeout, id}, state.timeout)}

            other ->
              other
          end

        %{state | pending: Map.put(state.pending, id, waiter)}

      {:error, error} ->
        case waiter do
          {:call, from, method, _} ->
            GenServer.reply(from, {:error, %{error | method: method}})
            state

          {:sync, method} ->
            %{state | sync: Map.put(state.sync, id, {:error, %{error | method: method}})}

          :checkpoint ->
            state
        end
    end
  end

  defp write(state, frame) do
    case JSON.encode(frame) do
      {:ok, json} ->
        case Worker.send_frame(state.worker, json) do
          :ok -> :ok
          {:error, :closed} -> {:error, Error.client(:worker_crashed, "the worker is gone")}
        end

      {:error, error} ->
        {:error, Error.client(:invalid_params, "params have no JSON form: #{error.message}")}
    end
  end

  # Waits (blocking, used at start-up and shutdown) until the reply to request `id` arrives,
  # dispatching any other frame on the way.
  defp sync_request(state, method, params, timeout) do
    id = state.next_id
    state = send_request(state, method, params, {:sync, method})

    case Map.pop(state.sync, id) do
      {nil, _} ->
        case await(state, &Map.has_key?(&1.sync, id), Worker.deadline(timeout)) do
          {:ok, state} ->
            {outcome, sync} = Map.pop(state.sync, id)
            {outcome, %{state | sync: sync}}

          {:exit, status, state} ->
            {{:error, Error.client(:worker_crashed, "worker exited with status #{status}")},
             state}

          {:timeout, state} ->
            {{:error, Error.client(:timeout, "no reply to #{method} within #{timeout} ms")},
             %{state | pending: Map.delete(state.pending, id)}}
        end

      {outcome, sync} ->
        {outcome, %{state | sync: sync}}
    end
  end

  defp await(state, done?, deadline) do
    if done?.(state) do
      {:ok, state}
    else
      case Worker.receive_frame(state.worker, Worker.remaining(deadline)) do
        {:frame, frame, worker} ->
          await(handle_frame(%{state | worker: worker}, frame), done?, deadline)

        {:exit, status, worker} ->
          {:exit, status, %{state | worker: worker}}

        {:timeout, worker} ->
          {:timeout, %{state | worker: worker}}
      end
    end
  end

  defp after_tell(%{ready: %{"storage" => "memory"}, checkpoint_every: every} = state)
       when every > 0 do
    if state.tells + 1 >= every do
      send_request(%{state | tells: 0}, "export", %{study: state.study}, :checkpoint)
    else
      %{state | tells: state.tells + 1}
    end
  end

  defp after_tell(state), do: state

  # ---------------------------------------------------------------------------- frames in

  defp handle_frame(state, frame) do
    case JSON.decode(frame) do
      {:ok, decoded} ->
        dispatch(state, RPC.classify(decoded))

      {:error, error} ->
        Logger.error("optuna_bridge: undecodable frame from the worker: #{error.message}")
        state
    end
  end

  defp dispatch(state, {:reply, id, outcome}), do: complete(state, id, outcome)

  defp dispatch(state, {:unattributed_error, error}) do
    case Map.keys(state.pending) do
      [] ->
        Logger.warning("optuna_bridge: worker error for no request: #{error.message}")
        state

      ids ->
        complete(state, Enum.min(ids), {:error, error})
    end
  end

  defp dispatch(state, {:notification, "ready", params}), do: %{state | ready: params}

  defp dispatch(state, {:notification, "error", %Error{} = error}) do
    Logger.warning(
      "optuna_bridge study #{inspect(state.study)}: #{error.method} failed: " <>
        "#{error.kind} (#{error.code}): #{error.message}"
    )

    %{state | errors: Enum.take([error | state.errors], @max_errors)}
  end

  defp dispatch(state, other) do
    Logger.debug("optuna_bridge: ignored frame #{inspect(other)}")
    state
  end

  defp complete(state, id, outcome) do
    {waiter, pending} = Map.pop(state.pending, id)
    state = %{state | pending: pending}

    case waiter do
      {:call, from, method, transform, timer} ->
        Process.cancel_timer(timer)

        reply =
          case outcome do
            {:ok, result} -> transform.(result)
            {:error, error} -> {:error, %{error | method: method}}
          end

        GenServer.reply(from, reply)
        state

      {:sync, method} ->
        outcome = with {:error, e} <- outcome, do: {:error, %{e | method: method}}
        %{state | sync: Map.put(state.sync, id, outcome)}

      :checkpoint ->
        checkpointed(state, outcome)

      nil ->
        state
    end
  end

  defp checkpointed(state, {:ok, %{"snapshot" => snapshot}}), do: %{state | snapshot: snapshot}

  defp checkpointed(state, {:error, %Error{kind: :method_not_found}}) do
    Logger.warning("optuna_bridge: the worker has no export method; snapshots are off")
    %{state | checkpoint_every: 0}
  end

  defp checkpointed(state, {:error, error}) do
    Logger.warning("optuna_bridge: checkpoint export failed: #{error.message}")
    state
  end
end
