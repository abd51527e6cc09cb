defmodule OptunaBridge.Study do
  @moduledoc """
  One Optuna study, served by its own worker process behind a port, or by a shared one
  (`worker:` an `OptunaBridge.SharedWorker`, or `pool:` an `OptunaBridge.Pool`).

      {:ok, study} =
        OptunaBridge.Study.start_link(
          %{name: "mnist", direction: "maximize", sampler: %{type: "tpe", seed: 42}},
          %{lr: [type: "float", low: 1.0e-5, high: 0.1, log: true],
            dropout: [type: "categorical", choices: [0.1, 0.2]]},
          framing: :packet4
        )

      {:ok, [%{number: n, params: params}]} = OptunaBridge.Study.ask(study)
      {:ok, _} = OptunaBridge.Study.tell(study, n, train(params))
      {:ok, best} = OptunaBridge.Study.best_trial(study)

  ## Contract

    * **Nothing deletes data implicitly.** Only `delete/1` and `stop(study, delete: true)` delete
      the study; no exit reason does (`terminate/2` only ends the worker).
    * **Arguments are checked in the caller.** A bad value or an unknown option raises
      `ArgumentError` in the calling process; params are encoded to JSON there too. No user
      input reaches the study process in a form that can crash it.
    * **Nothing waits forever.** Every call takes `timeout:` (default: the study's `:timeout`)
      and returns `{:error, %OptunaBridge.Error{kind: :timeout}}` past it. The port is written by
      a separate `OptunaBridge.PortOwner`, so a worker that stops reading never blocks this
      process; `stop/2` kills a worker that does not exit in its grace period by OS pid.
    * **Supervision-friendly.** `start_link/3` returns at once; the worker is spawned and the
      study created in `handle_continue/2`. Calls made meanwhile are queued (their timeouts
      run). `await_ready/2` waits for the study to exist, or returns why it could not. What
      needs no worker (the search space, the interpreter, one owner per study on a shared
      worker) is checked by the start call itself: `{:error, %Error{}}`, no process. A study
      the worker refuses (an existing name) stops the process with
      `{:shutdown, {:start_failed, error}}`; use `start/3` where that must not reach the caller.
    * **Crash recovery.** A worker that exits is restarted asynchronously with exponential
      backoff; at most `:max_restarts` restarts in `:restart_window` ms, then the process stops
      with `{:worker_restart_limit, last_reason}` for its supervisor to see. Pending callers get
      `:worker_crashed` at once. The study is rebuilt on a durable storage by `create` with
      `load_if_exists: true`; in memory from the last checkpoint (`export`, taken every
      `:checkpoint_every` tells or `:checkpoint_interval` ms, and spaced by
      `:checkpoint_spacing` times the previous export's duration, so never on every tell).
    * **Trial identity.** A trial handed out by a worker that died is checked against the new
      worker: if the new one does not have it running with the same params, a tell of it is
      refused with `{:error, %Error{kind: :trial_lost}}` (a `tell_async/4` records that error in
      `errors/1` and logs it); tells written to the dead worker that the new one does not have
      are reported the same way. Numbers the dead worker had handed out are never handed out
      again with other params: the new worker's numbering is moved past them with FAIL trials
      (user attr `"optuna_bridge"` = `"lost in a worker restart"`).
  """

  use GenServer
  require Logger

  alias OptunaBridge.{
    CheckpointPolicy,
    ClientId,
    Error,
    JSON,
    Outbox,
    PortOwner,
    RPC,
    TrialLedger,
    Wire
  }

  alias OptunaBridge.{Backpressure, LateReply, SharedWorker, Telemetry, Trial, Worker}

  @max_errors 100
  @protocol OptunaBridge.Python.protocol()
  @call_margin 5_000

  @start_options [
    :name,
    :python,
    :forward_logs,
    :env,
    :cd,
    :worker_args,
    :framing,
    :log_level,
    :timeout,
    :start_timeout,
    :checkpoint_every,
    :checkpoint_interval,
    :checkpoint_spacing,
    :grace,
    :max_restarts,
    :restart_window,
    :restart_backoff,
    :keep,
    :worker,
    :pool,
    :max_pending,
    :client
  ]

  # options of the worker process itself: they belong to the shared worker or pool when used
  @process_options [:python, :env, :cd, :worker_args, :framing, :log_level, :forward_logs]

  @type study :: GenServer.server()
  @type result(t) :: {:ok, t} | {:error, Error.t()}

  # -------------------------------------------------------------------------------------- API

  @doc """
  Starts the study process and returns at once; the worker is spawned and the study created
  in `handle_continue/2`. Use `await_ready/2` to wait for it. Unknown or malformed options raise
  `ArgumentError` here. See the module doc and the README for the options.
  """
  @spec start_link(map() | keyword(), map() | keyword(), keyword()) :: GenServer.on_start()
  def start_link(study_config, search_space, opts \\ []) do
    with {:ok, gen_opts, args} <- prepare_start(study_config, search_space, opts),
         do: GenServer.start_link(__MODULE__, args, gen_opts)
  end

  @doc """
  Like `start_link/3` but not linked to the caller: a study the worker refuses then stops without
  taking the caller with it (`await_ready/2` says why). The form for iex and Livebook.
  """
  @spec start(map() | keyword(), map() | keyword(), keyword()) :: GenServer.on_start()
  def start(study_config, search_space, opts \\ []) do
    with {:ok, gen_opts, args} <- prepare_start(study_config, search_space, opts),
         do: GenServer.start(__MODULE__, args, gen_opts)
  end

  # What needs no worker is checked here, in the caller: malformed options raise; a search space
  # the worker would refuse and a missing interpreter are `{:error, %Error{}}` at once.
  defp prepare_start(study_config, search_space, opts) do
    opts = Wire.validate_options!(opts, @start_options)
    Enum.each(opts, &check_start_option/1)
    create = Wire.create_params(study_config, search_space)
    opts = placement(opts, create["study"])

    with :ok <- OptunaBridge.SpaceCheck.check(create["search_space"]),
         :ok <- interpreter(opts) do
      study_json = encode!(create["study"])
      create_json = encode!(create)
      opts = Keyword.put_new_lazy(opts, :client, fn -> ClientId.default(create["study"]) end)
      {:ok, Keyword.take(opts, [:name]), {create["study"], study_json, create, create_json, opts}}
    end
  end

  defp interpreter(opts) do
    case opts[:shared] do
      nil -> local_interpreter(opts)
      {OptunaBridge.Pool, _pool, _name} -> :ok
      worker -> shared_running(worker)
    end
  end

  # A shared worker that is not running can never answer: a start error now, in the caller.
  defp shared_running(worker) do
    case GenServer.whereis(worker) do
      pid when is_pid(pid) and node(pid) == node() ->
        if Process.alive?(pid), do: :ok, else: not_running(worker)

      nil ->
        not_running(worker)

      _remote ->
        :ok
    end
  end

  defp not_running(worker) do
    message = "the shared worker #{inspect(worker)} is not running"
    {:error, %{Error.client(:start_failed, message) | method: "create"}}
  end

  defp local_interpreter(opts) do
    case Worker.interpreter(opts) do
      {:ok, _} -> :ok
      {:error, message} -> {:error, %{Error.client(:start_failed, message) | method: "create"}}
    end
  end

  defp check_start_option({key, v})
       when key in [:timeout, :start_timeout, :grace, :restart_window, :restart_backoff] and
              (not is_integer(v) or v < 0),
       do: Wire.bad_option!(key, v)

  defp check_start_option({key, v})
       when key in [:checkpoint_every, :checkpoint_interval, :checkpoint_spacing, :max_restarts] and
              (not is_integer(v) or v < 0),
       do: Wire.bad_option!(key, v)

  defp check_start_option({:max_pending, v}) when not is_integer(v) or v < 1,
    do: Wire.bad_option!(:max_pending, v)

  defp check_start_option({:framing, v}) when v not in [:line, :packet4],
    do: Wire.bad_option!(:framing, v)

  defp check_start_option({:worker_args, v}) when not is_list(v),
    do: Wire.bad_option!(:worker_args, v)

  defp check_start_option({:python, v}) when not is_binary(v), do: Wire.bad_option!(:python, v)
  defp check_start_option({:cd, v}) when not is_binary(v), do: Wire.bad_option!(:cd, v)

  defp check_start_option({:forward_logs, v}) when not is_boolean(v),
    do: Wire.bad_option!(:forward_logs, v)

  defp check_start_option({:env, env}) do
    valid =
      is_list(env) and
        Enum.all?(env, fn
          {k, v} -> (is_binary(k) or is_atom(k)) and (is_binary(v) or is_nil(v))
          _ -> false
        end)

    unless valid, do: Wire.bad_option!(:env, env)
    :ok
  end

  # `keep: true` was the opt-out of the old delete-on-terminate; keeping is now the only behaviour.
  defp check_start_option({:keep, true}), do: :ok

  defp check_start_option({:keep, v}),
    do:
      raise(
        ArgumentError,
        "keep: #{inspect(v)} is gone: nothing deletes a study implicitly any more; " <>
          "delete explicitly with OptunaBridge.Study.delete/1 or stop(study, delete: true)"
      )

  defp check_start_option({:client, v})
       when not (v == false or (is_binary(v) and byte_size(v) in 1..128)),
       do: Wire.bad_option!(:client, v)

  defp check_start_option(_), do: :ok

  # A study on a shared worker (`worker:`) or in a pool (`pool:`, placed by its name) takes no
  # worker-process options: the worker is not its own.
  defp placement(opts, name) do
    shared = Keyword.take(opts, [:worker, :pool])

    case {shared, Keyword.take(opts, @process_options)} do
      {[], _} ->
        opts

      {[_], []} ->
        worker =
          case shared do
            [worker: worker] -> worker
            [pool: pool] -> {OptunaBridge.Pool, pool, name}
          end

        Keyword.put(Keyword.drop(opts, [:worker, :pool]), :shared, worker)

      {[_, _ | _], _} ->
        raise ArgumentError, "give worker: or pool:, not both"

      {_, process_opts} ->
        raise ArgumentError,
              "#{inspect(Keyword.keys(process_opts))} configure a worker process: give them to " <>
                "the shared worker or pool, not to a study placed on one"
    end
  end

  @doc """
  A child spec for `{OptunaBridge.Study, {study_config, search_space, opts}}`. It is `:transient`
  (a `stop/2` is final; a crash is restarted) and its shutdown leaves room for `:grace`.
  """
  @spec child_spec({map() | keyword(), map() | keyword(), keyword()}) :: Supervisor.child_spec()
  def child_spec({study_config, search_space, opts}) do
    name = Wire.object(study_config)["name"]

    %{
      id: {__MODULE__, name},
      start: {__MODULE__, :start_link, [study_config, search_space, opts]},
      restart: :transient,
      shutdown: Keyword.get(opts, :grace, 2_000) + 2_000
    }
  end

  @doc """
  Waits until the study exists on a running worker: `:ok`, or `{:error, %Error{}}` when the
  start failed (the process then stops) or `timeout` ms passed (`:timeout`).
  """
  @spec await_ready(study(), timeout()) :: :ok | {:error, Error.t()}
  def await_ready(study, timeout \\ 30_000) do
    case do_call(study, :await_ready, timeout) do
      {:ok, _} -> :ok
      other -> other
    end
  end

  @doc """
  Asks for `n` new trials: `{:ok, [%OptunaBridge.Trial{number: 0, params: %{"lr" => 0.01}}]}`. Options:
  `:fixed_params` (a map), `:search_space` (as in `start_link/3`), `:lease_s` (seconds: each trial
  gets a lease ending at its `lease_end`; a trial not told, reported or `renew/3`ed by then is
  failed by the worker), `:retry` (0..100, needs `:lease_s`: a trial failed by its lease has its
  params enqueued again, at most this many times), `:timeout`.
  """
  @spec ask(study(), pos_integer(), keyword()) :: result([Trial.t()])
  def ask(study, n \\ 1, opts \\ []) do
    unless is_integer(n) and n >= 1,
      do: raise(ArgumentError, "n must be a positive integer, got: #{inspect(n)}")

    opts =
      Wire.validate_options!(opts, [:fixed_params, :search_space, :lease_s, :retry, :timeout])

    params = %{"n" => n}

    params =
      case {Keyword.fetch(opts, :lease_s), Keyword.fetch(opts, :retry)} do
        {:error, :error} ->
          params

        {{:ok, lease_s}, :error} ->
          Map.put(params, "lease_s", Wire.lease_s!(lease_s))

        {{:ok, lease_s}, {:ok, retry}} when is_integer(retry) and retry in 0..100 ->
          Map.merge(params, %{"lease_s" => Wire.lease_s!(lease_s), "retry" => retry})

        {:error, {:ok, _retry}} ->
          raise ArgumentError, "retry: needs lease_s: (a trial is retried when its lease ends)"

        {_, {:ok, retry}} ->
          Wire.bad_option!(:retry, retry)
      end

    params =
      case Keyword.fetch(opts, :fixed_params) do
        {:ok, fixed} when is_map(fixed) -> Map.put(params, "fixed_params", Wire.object(fixed))
        {:ok, fixed} -> Wire.bad_option!(:fixed_params, fixed)
        :error -> params
      end

    params =
      case Keyword.fetch(opts, :search_space) do
        {:ok, space} -> Map.put(params, "search_space", Wire.search_space(space))
        :error -> params
      end

    request(study, "ask", params, :ask, opts)
  end

  @doc """
  Tells a trial's result and waits for the worker: `{:ok, %OptunaBridge.Trial{number: 0,
  state: :complete, values: [0.5]}}` or `{:error, %OptunaBridge.Error{}}` (e.g. `:trial_finished`,
  `:trial_lost`). `value` is a number, a list (multi-objective) or `nil` with
  `state: :pruned | :fail`. Options: `:state`, `:user_attrs`, `:skip_if_finished`,
  `:constraints`, `:timeout`. Bad arguments raise `ArgumentError` here. `tell_async/4` is the
  fire-and-forget form.
  """
  @spec tell(study(), non_neg_integer(), number() | [number()] | nil, keyword()) ::
          result(Trial.t())
  def tell(study, number, value, opts \\ []) do
    {call_opts, tell_opts} =
      Keyword.split(Wire.validate_options!(opts, [:timeout | tell_keys()]), [:timeout])

    request(study, "tell", Wire.tell_params(number, value, tell_opts), {:tell, number}, call_opts)
  end

  @doc """
  Tells a trial's result without waiting (a JSON-RPC notification): returns `:ok` at once, or
  `{:error, %Error{kind: :overloaded}}` when the study already holds `:max_pending` requests
  (a cast that races past that count is refused by the study and kept in `errors/1`). A
  failure is not returned: the worker reports it with an `error` notification, which is logged
  and kept for `errors/1` (as are tells refused with `:trial_lost` and oversize frames). Options
  as `tell/4` without `:timeout`.
  """
  @spec tell_async(study(), non_neg_integer(), number() | [number()] | nil, keyword()) ::
          :ok | {:error, Error.t()}
  def tell_async(study, number, value, opts \\ []) do
    params = Wire.tell_params(number, value, opts)

    with :ok <- Backpressure.check(study),
         do: GenServer.cast(study, {:tell, number, encode!(params)})
  end

  @doc false
  @deprecated "tell/4 is synchronous now"
  def tell_sync(study, number, value, opts \\ []), do: tell(study, number, value, opts)

  defp tell_keys, do: [:state, :user_attrs, :skip_if_finished, :constraints]

  @doc """
  Extends the lease of a running trial asked with `lease_s:` (or gives one with `lease_s:`):
  `{:ok, lease_end}`, the new end as an ISO 8601 string (now plus the length). Options:
  `:lease_s` (a new length, the trial's own from then on; default the trial's own), `:timeout`. A finished trial (told, or failed by its lease) is
  `{:error, %Error{kind: :trial_finished}}`; a trial lost in a worker restart `:trial_lost`.
  """
  @spec renew(study(), non_neg_integer(), keyword()) :: result(String.t())
  def renew(study, number, opts \\ []) do
    unless is_integer(number) and number >= 0,
      do:
        raise(
          ArgumentError,
          "trial number must be a non-negative integer, got: #{inspect(number)}"
        )

    opts = Wire.validate_options!(opts, [:lease_s, :timeout])
    params = %{"number" => number}

    params =
      case Keyword.fetch(opts, :lease_s) do
        {:ok, lease_s} -> Map.put(params, "lease_s", Wire.lease_s!(lease_s))
        :error -> params
      end

    request(study, "renew", params, {:renew, number}, opts)
  end

  @doc """
  Records trials evaluated outside the worker ("tell without ask"; Optuna's `add_trials`), in
  order: `{:ok, [number, ...]}`. Each trial is a map or keyword list with `:params`, `:value` or
  `:values`, `:state` (`:complete` default, `:pruned`, `:fail`), `:user_attrs`,
  `:intermediate_values` (`%{step => value}`) and `:constraints`, or a finished
  `%OptunaBridge.Trial{}` (from another study's `trials/2`). 1 to 1000 trials; the worker checks
  them all before writing any. Option: `:timeout`.

  The numbers are never handed out again: if the worker dies before the trials are safe (an
  in-memory study's next checkpoint), the new worker's numbering is moved past them and each
  missing one is reported as `:trial_lost` in `errors/1`.
  """
  @spec add_trials(study(), [map() | keyword() | Trial.t()], keyword()) ::
          result([non_neg_integer()])
  def add_trials(study, trials, opts \\ []) do
    opts = Wire.validate_options!(opts, [:timeout])
    request(study, "add_trials", Wire.add_trials_params(trials), :add_trials, opts)
  end

  @plot_kinds ~w(optimization_history intermediate_values param_importances parallel_coordinate
                 contour slice edf rank timeline pareto_front hypervolume_history)

  @doc """
  Draws one of Optuna's figures (`optuna.visualization.plot_<kind>`) of the study. `kind` is
  `:optimization_history`, `:intermediate_values`, `:param_importances`, `:parallel_coordinate`,
  `:contour`, `:slice`, `:edf`, `:rank`, `:timeline`, `:pareto_front` or `:hypervolume_history`
  (atom or string). Returns, by `:format`:

    * `:plotly` (default) — `{:ok, figure}`: the plotly figure as decoded JSON (`"data"` traces,
      `"layout"`), for plotly.js (e.g. in a LiveView hook);
    * `:png`, `:svg` — `{:ok, binary}`: the image bytes (drawn by matplotlib in the worker).

  Options: `:format`, `:params` (names, for figures over parameters), `:objective` (index, on a
  multi-objective study), `:width`, `:height` (100..4000 px; 900 x 600 by default),
  `:reference_point` (`:hypervolume_history`: one number per objective), `:timeout`. The worker
  needs the `[plots]` extra, else `{:error, %Error{kind: :missing_dependency}}`.
  """
  @spec plot(study(), atom() | String.t(), keyword()) :: result(map() | binary())
  def plot(study, kind, opts \\ []) do
    kind =
      if is_atom(kind) and kind not in [nil, true, false], do: Atom.to_string(kind), else: kind

    unless kind in @plot_kinds,
      do:
        raise(
          ArgumentError,
          "plot kind must be one of #{Enum.join(@plot_kinds, ", ")}, got: #{inspect(kind)}"
        )

    opts =
      Wire.validate_options!(opts, [
        :format,
        :params,
        :objective,
        :width,
        :height,
        :reference_point,
        :timeout
      ])

    wire =
      Enum.reduce(opts, %{"kind" => kind, "format" => "plotly"}, fn
        {:format, f}, acc when f in [:plotly, :png, :svg, "plotly", "png", "svg"] ->
          Map.put(acc, "format", to_string(f))

        {:params, [_ | _] = names}, acc ->
          unless Enum.all?(names, &((is_binary(&1) and &1 != "") or Wire.name_atom?(&1))),
            do: Wire.bad_option!(:params, names)

          Map.put(acc, "params", Enum.map(names, &to_string/1))

        {:objective, i}, acc when is_integer(i) and i >= 0 ->
          Map.put(acc, "objective", i)

        {size, px}, acc when size in [:width, :height] and is_integer(px) and px in 100..4000 ->
          Map.put(acc, Atom.to_string(size), px)

        {:reference_point, [_ | _] = point}, acc ->
          unless Enum.all?(point, &is_number/1), do: Wire.bad_option!(:reference_point, point)
          Map.put(acc, "reference_point", point)

        {:timeout, _}, acc ->
          acc

        {key, v}, _acc ->
          Wire.bad_option!(key, v)
      end)

    request(study, "plot", wire, :plot, opts)
  end

  @doc "Reports an intermediate value: `{:ok, should_prune?}`. Option: `:timeout`."
  @spec report(study(), non_neg_integer(), non_neg_integer(), number(), keyword()) ::
          result(boolean())
  def report(study, number, step, value, opts \\ []) do
    unless is_integer(number) and number >= 0 and is_integer(step) and step >= 0 and
             is_number(value),
           do:
             raise(
               ArgumentError,
               "report needs a trial number, a step (non-negative integers) and a number, got: " <>
                 inspect({number, step, value})
             )

    opts = Wire.validate_options!(opts, [:timeout])

    request(
      study,
      "report",
      %{"number" => number, "step" => step, "value" => value},
      :report,
      opts
    )
  end

  @doc """
  The best trial: `{:ok, %OptunaBridge.Trial{}}`. A study with several objectives has no single
  best trial: `{:error, %Error{kind: :multi_objective}}` (use `best_trials/1`). Before any trial
  completed: `:no_completed_trials`. Options: `:datetimes`, `:timeout`.
  """
  @spec best_trial(study(), keyword()) :: result(Trial.t())
  def best_trial(study, opts \\ []) do
    case best_trials(study, opts) do
      {:ok, [%Trial{values: [_]} = best]} ->
        {:ok, best}

      {:ok, front} ->
        {:error,
         Error.client(
           :multi_objective,
           "the study has several objectives: best_trials/1 returns its Pareto front",
           %{"front_size" => length(front)}
         )}

      error ->
        error
    end
  end

  @doc "The best trial in a list, or the Pareto front (several objectives). Options: `:datetimes`, `:timeout`."
  @spec best_trials(study(), keyword()) :: result([Wire.trial()])
  def best_trials(study, opts \\ []) do
    opts = Wire.validate_options!(opts, [:datetimes, :timeout])
    request(study, "best", datetimes(%{}, opts), :trials, opts)
  end

  @doc """
  All trials, in number order. Options: `states: ["complete", ...]` (strings or atoms),
  `datetimes: true` (adds `:datetime_start` / `:datetime_complete`), `offset:` (skip this many,
  default 0) and `limit:` (at most this many): one page, e.g. `offset: 200, limit: 100`; pages
  keep a large study's replies under the worker's reply size limit. `:timeout`.
  """
  @spec trials(study(), keyword()) :: result([Wire.trial()])
  def trials(study, opts \\ []) do
    opts = Wire.validate_options!(opts, [:states, :datetimes, :offset, :limit, :timeout])

    params =
      Enum.reduce(opts, %{}, fn
        {:states, states}, acc -> Map.put(acc, "states", Wire.states!(states))
        {:offset, n}, acc when is_integer(n) and n >= 0 -> Map.put(acc, "offset", n)
        {:limit, n}, acc when is_integer(n) and n >= 1 -> Map.put(acc, "limit", n)
        {key, _}, acc when key in [:datetimes, :timeout] -> acc
        {key, v}, _acc -> Wire.bad_option!(key, v)
      end)

    request(study, "trials", datetimes(params, opts), :trials, opts)
  end

  @doc """
  The study's metric names (`metric_names:` in the study config, Optuna's `set_metric_names`):
  `{:ok, ["accuracy", ...]}`, or `{:ok, nil}` when it has none. Option: `:timeout`.
  """
  @spec metric_names(study(), keyword()) :: result([String.t()] | nil)
  def metric_names(study, opts \\ []) do
    opts = Wire.validate_options!(opts, [:timeout])
    request(study, "trials", %{"limit" => 1}, :metric_names, opts)
  end

  defp datetimes(params, opts) do
    case Keyword.fetch(opts, :datetimes) do
      {:ok, flag} when is_boolean(flag) -> Map.put(params, "datetimes", flag)
      {:ok, other} -> Wire.bad_option!(:datetimes, other)
      :error -> params
    end
  end

  @doc "The study's snapshot (the worker's `export`), as decoded JSON. Option: `:timeout`."
  @spec export(study(), keyword()) :: result(map())
  def export(study, opts \\ []) do
    request(study, "export", %{}, :snapshot, Wire.validate_options!(opts, [:timeout]))
  end

  @doc """
  Makes every result told so far survive a worker crash, and returns when it does: on an
  in-memory study a checkpoint (an `export` kept by this process) is taken now; on a durable
  storage every replied tell is already stored, so this answers at once. `{:ok, :checkpointed}` or
  `{:ok, :durable}`. `OptunaBridge.optimize/3` calls it before returning. Option: `:timeout`.
  """
  @spec persist(study(), keyword()) :: result(:checkpointed | :durable)
  def persist(study, opts \\ []) do
    request(study, "export", %{}, :checkpoint_now, Wire.validate_options!(opts, [:timeout]))
  end

  @doc """
  Enqueues a trial with these params (Optuna's `enqueue_trial`): the next `ask` hands it out.
  `{:ok, enqueued?}` (`false` when `skip_if_exists: true` found the same params). Options:
  `:user_attrs`, `:skip_if_exists`, `:timeout`.
  """
  @spec enqueue(study(), map() | keyword(), keyword()) :: result(boolean())
  def enqueue(study, params, opts \\ []) do
    opts = Wire.validate_options!(opts, [:user_attrs, :skip_if_exists, :timeout])
    wire = %{"params" => Wire.object(params)}

    wire =
      Enum.reduce(opts, wire, fn
        {:user_attrs, attrs}, acc when is_map(attrs) -> Map.put(acc, "user_attrs", attrs)
        {:skip_if_exists, flag}, acc when is_boolean(flag) -> Map.put(acc, "skip_if_exists", flag)
        {:timeout, _}, acc -> acc
        {key, v}, _acc -> Wire.bad_option!(key, v)
      end)

    with {:ok, %{"enqueued" => enqueued}} <- request(study, "enqueue", wire, :raw, opts),
         do: {:ok, enqueued}
  end

  @doc """
  Sets user attrs on the study (`number: nil`, the default) or on a running trial. Options:
  `:number`, `:timeout`.
  """
  @spec set_attrs(study(), map() | keyword(), keyword()) :: :ok | {:error, Error.t()}
  def set_attrs(study, user_attrs, opts \\ []) do
    opts = Wire.validate_options!(opts, [:number, :timeout])
    wire = %{"user_attrs" => Wire.object(user_attrs)}

    wire =
      case opts[:number] do
        nil -> wire
        n when is_integer(n) and n >= 0 -> Map.put(wire, "number", n)
        other -> Wire.bad_option!(:number, other)
      end

    with {:ok, _} <- request(study, "set_attrs", wire, :raw, opts), do: :ok
  end

  @doc """
  Parameter importances (Optuna's default evaluator): `{:ok, %{"lr" => 0.8, ...}}`. Options:
  `:params` (names to evaluate), `:objective` (index, several objectives), `:timeout`.
  """
  @spec importance(study(), keyword()) :: result(%{optional(String.t()) => float()})
  def importance(study, opts \\ []) do
    opts = Wire.validate_options!(opts, [:params, :objective, :timeout])

    wire =
      Enum.reduce(opts, %{}, fn
        {:params, [_ | _] = names}, acc -> Map.put(acc, "params", Enum.map(names, &to_string/1))
        {:objective, i}, acc when is_integer(i) and i >= 0 -> Map.put(acc, "objective", i)
        {:timeout, _}, acc -> acc
        {key, v}, _acc -> Wire.bad_option!(key, v)
      end)

    with {:ok, %{"importances" => imp}} <- request(study, "importance", wire, :raw, opts),
         do: {:ok, imp}
  end

  @doc """
  Imports a snapshot (as `export/1` returns it) into this study's worker and storage:
  `{:ok, %{"study" => name, "n_trials" => n}}`. Options: `:as` (another study name),
  `:overwrite` (default false: an existing study is `:study_exists`), `:timeout`.
  """
  @spec import(study(), map(), keyword()) :: result(map())
  def import(study, snapshot, opts \\ []) when is_map(snapshot) do
    opts = Wire.validate_options!(opts, [:as, :overwrite, :timeout])
    wire = %{"snapshot" => snapshot}

    wire =
      Enum.reduce(opts, wire, fn
        {:as, name}, acc when is_binary(name) and name != "" -> Map.put(acc, "study", name)
        {:overwrite, flag}, acc when is_boolean(flag) -> Map.put(acc, "overwrite", flag)
        {:timeout, _}, acc -> acc
        {key, v}, _acc -> Wire.bad_option!(key, v)
      end)

    raw_request(study, "import", wire, opts)
  end

  @doc """
  The studies in this study's worker storage: `{:ok, [%{"study" => name, "directions" => [...],
  "n_trials" => n, "n_running" => n}]}`. Option: `:timeout`.
  """
  @spec list(study(), keyword()) :: result([map()])
  def list(study, opts \\ []) do
    opts = Wire.validate_options!(opts, [:timeout])

    with {:ok, %{"studies" => studies}} <- raw_request(study, "list", %{}, opts),
         do: {:ok, studies}
  end

  @doc "Round trip to the worker: `:ok` or an error (e.g. `:timeout`). Option: `:timeout`."
  @spec ping(study(), keyword()) :: :ok | {:error, Error.t()}
  def ping(study, opts \\ []) do
    opts = Wire.validate_options!(opts, [:timeout])
    with {:ok, _} <- raw_request(study, "ping", %{}, opts), do: :ok
  end

  defp raw_request(study, method, params, opts),
    do: do_call(study, {:request, method, encode!(params), false, :raw}, opts[:timeout])

  @doc """
  Deletes the study from the worker's storage, explicitly (nothing else ever deletes it). The
  process stays up; `stop(study, delete: true)` deletes and stops. Option: `:timeout`.
  """
  @spec delete(study(), keyword()) :: :ok | {:error, Error.t()}
  def delete(study, opts \\ []) do
    case request(study, "delete", %{}, :delete, Wire.validate_options!(opts, [:timeout])) do
      {:ok, _} -> :ok
      error -> error
    end
  end

  @doc "Uploads a file as an artifact of a trial or the study: see `OptunaBridge.Artifacts`."
  defdelegate put_artifact(study, number, source, opts \\ []), to: OptunaBridge.Artifacts

  @doc "Downloads an artifact (to a binary, or `to:` a file): see `OptunaBridge.Artifacts`."
  defdelegate get_artifact(study, artifact_id, opts \\ []), to: OptunaBridge.Artifacts

  @doc "Lists artifacts of the study or of a trial: see `OptunaBridge.Artifacts`."
  defdelegate artifacts(study, number \\ nil, opts \\ []), to: OptunaBridge.Artifacts

  @doc "Copies trials of another study into this one: see `OptunaBridge.WarmStart`."
  defdelegate copy_trials(study, from, opts \\ []), to: OptunaBridge.WarmStart

  @doc "Replaces or clears (`nil`) the study's stop rules: see `OptunaBridge.StopRules`."
  defdelegate set_stop(study, rules, opts \\ []), to: OptunaBridge.StopRules

  @doc false
  # For the modules holding typed functions of newer methods: `study` is added to params.
  @spec study_request(study(), String.t(), map(), keyword()) :: result(JSON.value())
  def study_request(study, method, params, opts), do: request(study, method, params, :raw, opts)

  @doc """
  Any method, with these params sent as they are (no `study` added): the raw decoded result.
  Option: `:timeout`.
  """
  @spec request(study(), String.t(), map(), keyword()) :: result(JSON.value())
  def request(study, method, params \\ %{}, opts \\ [])

  def request(study, method, params, opts) when is_binary(method) and is_map(params) do
    opts = Wire.validate_options!(opts, [:timeout])
    do_call(study, {:request, method, encode!(params), false, :raw}, opts[:timeout])
  end

  def request(_study, method, params, _opts),
    do:
      raise(
        ArgumentError,
        "request needs a method name and a params map, got: #{inspect({method, params})}"
      )

  @doc "Errors of notifications (`tell_async/4`) and lost tells, oldest first (last 100)."
  @spec errors(study(), keyword()) :: [Error.t()] | {:error, Error.t()}
  def errors(study, opts \\ []) do
    opts = Wire.validate_options!(opts, [:timeout])
    unwrap(do_call(study, :errors, Keyword.get(opts, :timeout, 5_000)))
  end

  @doc """
  The current worker: `%{os_pid:, storage:, restarts:, study:, status:, checkpoints:, client:,
  held:}` (`status` is `:starting`, `:establishing`, `:ready` or `:restarting`; `checkpoints`
  counts the snapshot exports sent; `client` is the id sent with each `ask`, or nil; `held` the
  numbers of the trials this process handed out and not told yet, sorted). Answered at once, even
  while the worker restarts.
  """
  @spec info(study(), keyword()) :: map() | {:error, Error.t()}
  def info(study, opts \\ []) do
    opts = Wire.validate_options!(opts, [:timeout])
    unwrap(do_call(study, :info, Keyword.get(opts, :timeout, 5_000)))
  end

  defp unwrap({:ok, value}), do: value
  defp unwrap(error), do: error

  @doc """
  Stops the study process: closes the worker's stdin and, if the worker does not exit within
  `:grace` ms, kills its OS process. The study stays in its storage unless `delete: true`, which
  deletes it first (the process is stopped either way; a failed delete is the return value).
  Options: `:delete` (default false), `:timeout` (for the delete and the stop; default 30 s).
  """
  @spec stop(study(), keyword()) :: :ok | {:error, Error.t()}
  def stop(study, opts \\ []) do
    opts = Wire.validate_options!(opts, [:delete, :timeout])
    timeout = Keyword.get(opts, :timeout, 30_000)

    unless is_boolean(Keyword.get(opts, :delete, false)),
      do: Wire.bad_option!(:delete, opts[:delete])

    deleted = if opts[:delete], do: delete(study, timeout: timeout), else: :ok

    try do
      GenServer.stop(study, :normal, timeout)
    catch
      # already stopped (or stopping by itself): stop/2 is idempotent
      :exit, {reason, _} when reason in [:noproc, :normal] -> :ok
      :exit, {{:shutdown, _}, _} -> :ok
    end

    deleted
  end

  defp request(study, method, params, kind, opts) do
    do_call(study, {:request, method, encode!(params), true, kind}, opts[:timeout])
  end

  defp encode!(term) do
    case JSON.encode(term) do
      {:ok, json} ->
        json

      {:error, error} ->
        raise ArgumentError, "no JSON form: #{error.message}: #{inspect(error.term)}"
    end
  end

  # The study answers `{:error, :timeout}` itself at the deadline; the call's own limit is a
  # backstop a margin later. Without `timeout:` the study's default applies (the caller cannot
  # know it, so its backstop is the study's default at most `@call_margin` later, see init).
  defp do_call(study, message, timeout) do
    unless timeout == nil or (is_integer(timeout) and timeout >= 0),
      do: Wire.bad_option!(:timeout, timeout)

    limit = if is_integer(timeout), do: timeout + @call_margin, else: :default

    Telemetry.span(
      [:optuna_bridge, :request],
      fn -> %{study: study_name(study), method: call_method(message)} end,
      fn ->
        {reply, queue_time} = call_study(study, message, timeout, limit)
        queued = if queue_time, do: %{queue_time: queue_time}, else: %{}
        {reply, queued, %{result: result_tag(reply)}}
      end
    )
  end

  # The study's name (the one identifier telemetry uses), published in its process dictionary.
  defp study_name(study) do
    with pid when is_pid(pid) <- GenServer.whereis(study),
         true <- node(pid) == node(),
         {:dictionary, dict} <- Process.info(pid, :dictionary) do
      dict[:optuna_bridge_study]
    else
      _ -> nil
    end
  end

  defp result_tag({:error, %Error{kind: kind}}), do: {:error, kind}
  defp result_tag(_), do: :ok

  # The reply and, for a call whose frame was written, its queue time (see reply_call/3).
  defp call_study(study, message, timeout, limit) do
    try do
      case GenServer.call(study, {:call, message, timeout}, backstop(study, limit)) do
        {:queued, queue_time, reply} -> {reply, queue_time}
        reply -> {reply, nil}
      end
    catch
      :exit, {:timeout, _} ->
        {{:error, Error.client(:timeout, "the study process did not answer in time")}, nil}

      :exit, {{:shutdown, {:start_failed, %Error{} = error}}, _} ->
        {{:error, error}, nil}

      :exit, {reason, {GenServer, :call, _}} ->
        {{:error,
          Error.client(:worker_stopped, "the study is not running", %{
            "reason" => inspect(reason)
          })}, nil}
    end
  end

  defp backstop(_study, limit) when is_integer(limit), do: limit
  defp backstop(study, :default), do: default_timeout(study) + @call_margin

  # The study's default timeout, published in its process dictionary at init (read without a
  # message, so even a study that is busy answering is not asked).
  defp default_timeout(study) do
    with pid when is_pid(pid) <- GenServer.whereis(study),
         true <- node(pid) == node(),
         {:dictionary, dict} <- Process.info(pid, :dictionary),
         timeout when is_integer(timeout) <- dict[:optuna_bridge_timeout] do
      timeout
    else
      _ -> 15_000
    end
  end

  # -------------------------------------------------------------------------------- callbacks

  @impl true
  def init({name, study_json, create, create_json, opts}) do
    case claim(opts[:shared], name) do
      :ok -> init_state({name, study_json, create, create_json, opts})
      {:error, error} -> refuse_start(error)
    end
  end

  # On a shared worker the study name is claimed for this process (one study, one owner). A
  # shared worker that is not running is found out by the attachment, as before.
  defp claim(nil, _name), do: :ok

  defp claim(shared, name) do
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
  defp refuse_start(error) do
    :proc_lib.init_ack({:error, error})
    exit(:normal)
  end

  defp init_state({name, study_json, create, create_json, opts}) do
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
  def handle_continue(:spawn, state), do: {:noreply, spawn_worker(state)}

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

  defp admit_call(message, timeout, from, state) do
    ref = make_ref()
    timeout = timeout || state.timeout
    method = call_method(message)
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

  defp now_native, do: System.monotonic_time()

  # A call's frame is written: its queue time (telemetry's `queue_time`) is known.
  defp written(state, ref) do
    case state.calls do
      %{^ref => call} ->
        put_in(state.calls[ref], Map.put(call, :queue_time, now_native() - call.at))

      _ ->
        state
    end
  end

  defp call_method(:await_ready), do: "await_ready"
  defp call_method(:errors), do: "errors"
  defp call_method(:info), do: "info"
  defp call_method({:request, method, _, _, _}), do: method

  @impl true
  def handle_cast({:tell, number, params_json}, state) do
    cond do
      TrialLedger.lost?(state.ledger, number) ->
        {:noreply, record_error(state, trial_lost(state, number))}

      Backpressure.full?(state.backpressure, pending(state)) ->
        error = %{overloaded(state) | method: "tell", data: %{"number" => number}}
        {:noreply, record_error(state, error)}

      state.status != :ready ->
        queue = :queue.in({:cast, number, params_json}, state.queue)
        {:noreply, publish(%{state | queue: queue, queued_casts: state.queued_casts + 1})}

      true ->
        {:noreply, run_cast(state, number, params_json)}
    end
  end

  defp run_cast(state, number, params_json) do
    if TrialLedger.lost?(state.ledger, number) do
      record_error(state, trial_lost(state, number))
    else
      frame = [
        ~s({"jsonrpc":"2.0","method":"tell","params":),
        with_study(state, params_json, true),
        ?}
      ]

      case write(state, frame, {:notification, "tell", number}) do
        {:ok, state} ->
          state |> told(number) |> after_tell()

        {:error, error, state} ->
          record_error(state, %{
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
      worker_gone(state, "worker port owner exited: #{inspect(reason)}", %{
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
    kill_worker(state)

    error =
      Error.client(:start_failed, "the worker was not ready within #{state.start_timeout} ms")

    start_failed(state, error)
  end

  def handle_info(:restart, %{status: :restarting} = state) do
    Telemetry.execute([:optuna_bridge, :worker, :restart], %{count: 1}, %{
      study: state.study,
      restarts: state.restarts
    })

    {:noreply, spawn_worker(state)}
  end

  def handle_info(:checkpoint, state) do
    {action, policy} = CheckpointPolicy.fired(state.checkpoint, now_ms())
    {:noreply, checkpoint_action(%{state | checkpoint: policy}, action)}
  end

  def handle_info(_stale, state), do: {:noreply, state}

  @impl true
  def terminate(_reason, state) do
    fail_all(state, Error.client(:worker_stopped, "the study was stopped"))
    close_worker(state)
    :ok
  end

  # ------------------------------------------------------------------------ worker lifecycle

  defp spawn_worker(state) do
    gen = state.gen + 1
    owner = start_owner(state.opts[:shared], state.opts)
    timer = Process.send_after(self(), {:start_timeout, gen}, state.start_timeout)

    %{
      Map.put(state, :spawned_at, now_native())
      | owner: owner,
        os_pid: nil,
        gen: gen,
        status: :starting,
        ready: nil,
        start_timer: timer,
        outbox: Outbox.new(),
        pending: %{}
    }
  end

  defp start_owner(nil, opts), do: PortOwner.start_link(opts)

  defp start_owner({OptunaBridge.Pool, pool, name}, _),
    do: SharedWorker.attach(OptunaBridge.Pool.worker(pool, name))

  defp start_owner(shared, _opts), do: SharedWorker.attach(shared)

  defp worker_event(state, {:opened, os_pid}) do
    Logger.metadata(os_pid: os_pid)
    {:noreply, %{state | os_pid: os_pid}}
  end

  defp worker_event(state, {:frame, frame}) do
    {:noreply, handle_frame(state, frame)}
  catch
    {:stop, reason, state} -> {:stop, reason, state}
  end

  defp worker_event(state, {:start_failed, error}) do
    start_failed(%{state | owner: nil}, error)
  end

  # Exit 0 is the worker's own clean end (a `shutdown` request, or the end of its input): not a
  # crash, so nothing is restarted; the study process ends normally and says why.
  defp worker_event(%{established: true} = state, {:exit, 0}) do
    Logger.info("optuna_bridge study #{inspect(state.study)}: the worker exited 0; stopping")
    fail_all(state, Error.client(:worker_stopped, "the worker exited (status 0)"))
    {:stop, :normal, %{state | owner: nil, os_pid: nil, calls: %{}, queue: :queue.new()}}
  end

  defp worker_event(state, {:exit, status}) do
    worker_gone(state, "worker exited with status #{status}", %{"exit_status" => status})
  end

  # The very first start failed: the configuration or the environment is wrong; restarting
  # would fail the same way. Later starts count against the restart budget.
  # Before the study ever existed, an error that the same configuration would meet again (a bad
  # search space, an existing name, no interpreter, a worker that cannot start) is final: the
  # process stops with {:shutdown, {:start_failed, error}}, which a :transient supervisor does not
  # restart. Anything else (a storage error, a crash) is retried within the restart budget.
  @final_start_kinds [
    :invalid_params,
    :invalid_request,
    :study_exists,
    :limit_exceeded,
    :missing_dependency,
    :snapshot_invalid,
    :start_failed
  ]

  defp start_failed(%{established: false} = state, %Error{kind: kind} = error)
       when kind in @final_start_kinds do
    fail_all(state, error)
    {:stop, {:shutdown, {:start_failed, error}}, %{state | calls: %{}, queue: :queue.new()}}
  end

  defp start_failed(state, error) do
    Logger.error("optuna_bridge study #{inspect(state.study)}: restart failed: #{error.message}")
    schedule_restart(%{state | owner: nil, os_pid: nil}, error)
  end

  defp worker_gone(state, message, data) do
    Telemetry.execute([:optuna_bridge, :worker, :exit], %{count: 1}, %{
      study: state.study,
      os_pid: state.os_pid,
      reason: message
    })

    Logger.error("optuna_bridge study #{inspect(state.study)}: #{message}; restarting the worker")
    error = Error.client(:worker_crashed, message, data)
    state = fail_pending(state, error)

    if state.status in [:starting, :establishing] and not state.established do
      start_failed(state, Error.client(:start_failed, message, data))
    else
      state = collect_unsettled(%{state | owner: nil, os_pid: nil})
      schedule_restart(state, error)
    end
  end

  # Tells the dead worker may not have processed stay in the trial ledger for reconciliation.
  defp collect_unsettled(state), do: %{state | outbox: Outbox.new()}

  defp schedule_restart(state, error) do
    now = System.monotonic_time(:millisecond)
    recent = [now | Enum.filter(state.restart_times, &(&1 > now - state.restart_window))]

    if length(recent) > state.max_restarts do
      fail_all(state, error)
      {:stop, {:worker_restart_limit, error}, %{state | calls: %{}, queue: :queue.new()}}
    else
      delay = min(state.restart_backoff * Integer.pow(2, length(recent) - 1), 10_000)
      Process.send_after(self(), :restart, delay)

      {:noreply,
       %{
         state
         | status: :restarting,
           restarts: state.restarts + 1,
           restart_times: recent,
           last_exit: error
       }}
    end
  end

  # On a shared worker only this study's attachment goes: the other studies keep the worker.
  defp kill_worker(%{owner: owner} = state) when owner != nil and state.shared do
    Process.exit(owner, :kill)
    :ok
  end

  defp kill_worker(%{os_pid: os_pid, owner: owner}) do
    Worker.kill_os_pid(os_pid)
    if owner, do: Process.exit(owner, :kill)
    :ok
  end

  defp close_worker(%{owner: nil}), do: :ok

  defp close_worker(%{shared: true} = state) do
    PortOwner.close(state.owner)
    :ok
  end

  defp close_worker(state) do
    os_pid = state.os_pid || opened_pid(state.owner)
    PortOwner.close(state.owner)
    deadline = Worker.deadline(state.grace)

    unless wait_gone(os_pid, deadline) do
      Worker.kill_os_pid(os_pid)
      wait_gone(os_pid, Worker.deadline(1_000))
    end

    Process.exit(state.owner, :kill)
    :ok
  end

  defp opened_pid(owner) do
    receive do
      {:worker, ^owner, {:opened, os_pid}} -> os_pid
    after
      0 -> nil
    end
  end

  defp wait_gone(nil, _deadline), do: true

  defp wait_gone(os_pid, deadline) do
    cond do
      not Worker.os_alive?(os_pid) ->
        true

      Worker.remaining(deadline) == 0 ->
        false

      true ->
        Process.sleep(20)
        wait_gone(os_pid, deadline)
    end
  end

  # ------------------------------------------------------------------------ establishing

  # A deleted study stays deleted: the new worker is not asked to create or import it.
  defp on_ready(%{deleted: true} = state, %{"protocol" => @protocol} = ready),
    do: become_ready(%{state | ready: ready, max_frame: ready["max_frame_bytes"]})

  defp on_ready(state, %{"protocol" => @protocol} = ready) do
    Telemetry.execute(
      [:optuna_bridge, :worker, :start],
      %{duration: now_native() - Map.get(state, :spawned_at, now_native())},
      %{study: state.study, os_pid: state.os_pid, protocol: @protocol, worker: ready["worker"]}
    )

    state = %{state | ready: ready, max_frame: ready["max_frame_bytes"], status: :establishing}
    {method, params} = establish_request(state)
    setup_request(state, method, params, :establish)
  end

  defp on_ready(state, ready) do
    kill_worker(state)

    error = Error.client(:start_failed, OptunaBridge.Python.mismatch(ready), ready)

    elem_state(start_failed(%{state | owner: nil, os_pid: nil}, error))
  end

  # start_failed/schedule_restart return GenServer tuples; frames are handled in pipelines.
  defp elem_state({:noreply, state}), do: state
  defp elem_state({:stop, reason, state}), do: throw({:stop, reason, state})

  defp establish_request(%{established: false} = state),
    do: {"create", {:raw, state.create_json}}

  defp establish_request(%{ready: %{"storage" => storage}} = state) when storage != "memory",
    do: {"create", Map.put(state.create, "load_if_exists", true)}

  defp establish_request(%{snapshot: nil} = state), do: {"create", state.create}

  defp establish_request(state),
    do: {"import", %{"snapshot" => state.snapshot, "overwrite" => true}}

  defp setup_request(state, method, params, step) do
    json =
      case params do
        {:raw, json} -> json
        map -> JSON.encode!(map)
      end

    case send_request(state, method, json, {:setup, step}) do
      {:ok, state} -> state
      {:error, error, state} -> elem_state(start_failed(state, error))
    end
  end

  defp setup_reply(%{established: false} = state, :establish, {:ok, _}),
    do: become_ready(%{state | established: true})

  defp setup_reply(state, :establish, {:ok, _}),
    do: setup_request(state, "trials", %{"study" => state.study}, :reconcile)

  defp setup_reply(state, :reconcile, {:ok, %{"trials" => trials}}) do
    state = reconcile(state, trials)
    burn = TrialLedger.to_burn(state.ledger, trials)

    if burn > 0,
      do: setup_request(state, "ask", %{"study" => state.study, "n" => min(burn, 1000)}, :burn),
      else: become_ready(state)
  end

  defp setup_reply(state, :burn, {:ok, %{"trials" => trials}}) do
    state =
      Enum.reduce(trials, state, fn %{"number" => n}, state ->
        params = %{
          "study" => state.study,
          "number" => n,
          "state" => "fail",
          "user_attrs" => %{"optuna_bridge" => "lost in a worker restart"}
        }

        {_, state} = send_request(state, "tell", JSON.encode!(params), :ignore)
        state
      end)

    become_ready(state)
  end

  defp setup_reply(%{established: false} = state, :establish, {:error, error}) do
    kill_worker(state)
    elem_state(start_failed(%{state | owner: nil, os_pid: nil}, %{error | method: "create"}))
  end

  defp setup_reply(state, step, {:error, error}) do
    Logger.error("optuna_bridge study #{inspect(state.study)}: #{step} failed: #{error.message}")
    kill_worker(state)
    elem_state(start_failed(%{state | owner: nil, os_pid: nil}, error))
  end

  defp become_ready(state) do
    Process.cancel_timer(state.start_timer)
    state = %{state | status: :ready, start_timer: nil}
    {refs, queue} = {:queue.to_list(state.queue), :queue.new()}
    Enum.reduce(refs, publish(%{state | queue: queue, queued_casts: 0}), &run_call(&2, &1))
  end

  # What this study holds for its worker (OptunaBridge.Backpressure): calls, queued casts, and
  # frames its own port owner has not written yet.
  defp pending(state) do
    backlog = if state.shared, do: 0, else: Backpressure.backlog(state.owner)
    map_size(state.calls) + state.queued_casts + backlog
  end

  defp publish(state) do
    Backpressure.publish(state.backpressure, pending(state))
    state
  end

  defp overloaded(state),
    do: Backpressure.overloaded(pending(state), state.backpressure.max)

  # A trial handed out by a dead worker is kept only if the new worker has it running with the
  # same params; tells that died with the worker are reported.
  defp reconcile(state, trials) do
    {ledger, dead} = TrialLedger.reconcile(state.ledger, trials)

    state = %{state | ledger: ledger, checkpoint: CheckpointPolicy.clean(state.checkpoint)}

    Enum.reduce(dead, state, fn
      {n, :tell_again}, state ->
        why = "its tell died with the worker; the trial is running again, tell it again"
        record_error(state, trial_lost(state, n, why))

      {n, :lost}, state ->
        record_error(state, trial_lost(state, n, lost_tell_reason()))

      {n, :add_lost}, state ->
        why = "add_trials recorded it on the worker that died and the new worker does not have it"
        record_error(state, %{trial_lost(state, n, why) | method: "add_trials"})
    end)
  end

  defp lost_tell_reason,
    do: "its tell died with the worker and the new worker does not have the trial with its params"

  defp trial_lost(
         state,
         number,
         why \\ "it was handed out by a worker that died and the new worker does not have it " <>
           "with the same params"
       ) do
    error =
      Error.client(
        :trial_lost,
        "trial #{number} of study #{inspect(state.study)} is lost: #{why}",
        %{"number" => number}
      )

    %{error | method: "tell"}
  end

  # ------------------------------------------------------------------------ calls

  defp run_call(state, {:cast, number, json}), do: run_cast(state, number, json)

  defp run_call(state, ref) do
    case state.calls[ref] do
      nil ->
        state

      %{message: :await_ready} ->
        reply_call(state, ref, {:ok, :ready})

      %{message: {:request, _, _, _, :checkpoint_now}} ->
        if memory?(state),
          do: run_request(state, ref),
          else: reply_call(state, ref, {:ok, :durable})

      %{message: {:request, method, _json, _add_study?, {verb, number}}}
      when verb in [:tell, :renew] ->
        if TrialLedger.lost?(state.ledger, number),
          do: reply_call(state, ref, {:error, %{trial_lost(state, number) | method: method}}),
          else: run_request(state, ref)

      %{} ->
        run_request(state, ref)
    end
  end

  defp run_request(state, ref) do
    {:request, method, json, add_study?, kind} = state.calls[ref].message
    # the export that is a checkpoint holds every frame written before it
    kind = if kind == :checkpoint_now, do: {:checkpoint_now, state.seq + 1}, else: kind

    json = if method == "ask", do: ClientId.with_client(json, state.client_json), else: json

    case send_request(state, method, with_study(state, json, add_study?), {:call, ref, kind}) do
      {:ok, state} ->
        state = written(state, ref)

        case kind do
          {:tell, number} -> state |> told(number) |> after_tell()
          _ -> state
        end

      {:error, error, state} ->
        reply_call(state, ref, {:error, %{error | method: method}})
    end
  end

  defp reply_call(state, ref, reply) do
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

  defp with_study(_state, json, false), do: json
  defp with_study(state, "{}", true), do: [~s({"study":), state.study_json, ?}]
  defp with_study(state, "{" <> rest, true), do: [~s({"study":), state.study_json, ?,, rest]

  # A tell was written (state.seq is its frame): the trial is no longer handed out; the tell is
  # remembered until it is safe (in a checkpoint, or processed by a durable worker). With
  # in-memory storage and checkpoints off nothing survives a crash, so nothing is remembered.
  defp told(state, number) do
    remember? = not (memory?(state) and CheckpointPolicy.off?(state.checkpoint))

    %{state | ledger: TrialLedger.told(state.ledger, state.seq, number, remember?)}
  end

  defp memory?(state), do: state.ready["storage"] == "memory"

  # ------------------------------------------------------------------------ frames out

  defp send_request(state, method, params_json, waiter) do
    # on a shared worker, ids are unique in the VM so that replies route without rewriting
    id = if state.shared, do: :erlang.unique_integer([:positive, :monotonic]), else: state.next_id

    frame = [
      ~s({"jsonrpc":"2.0","id":),
      Integer.to_string(id),
      ~s(,"method":),
      JSON.encode!(method),
      ~s(,"params":),
      params_json,
      ?}
    ]

    case write(%{state | next_id: id + 1}, frame, {:request, id}) do
      {:ok, state} -> {:ok, %{state | pending: Map.put(state.pending, id, waiter)}}
      {:error, error, state} -> {:error, error, state}
    end
  end

  defp write(%{owner: nil} = state, _frame, _what),
    do: {:error, Error.client(:worker_crashed, "the worker is gone"), state}

  defp write(state, frame, what) do
    bytes = IO.iodata_length(frame)

    if state.max_frame && bytes > state.max_frame do
      error =
        Error.client(
          :frame_too_large,
          "the frame is #{bytes} bytes; this worker reads at most #{state.max_frame} " <>
            "(--max-frame-bytes); it was not sent",
          %{"bytes" => bytes, "max_frame_bytes" => state.max_frame}
        )

      {:error, error, state}
    else
      PortOwner.write(state.owner, frame)
      seq = state.seq + 1

      entry =
        case what do
          {:request, id} -> {:request, seq, id, bytes}
          {:notification, method, meta} -> {:notification, seq, method, meta, bytes}
        end

      {:ok, %{state | seq: seq, outbox: Outbox.push(state.outbox, entry)}}
    end
  end

  # ------------------------------------------------------------------------ checkpoints

  # In memory, OptunaBridge.CheckpointPolicy says when the next export is due.
  defp after_tell(%{ready: %{"storage" => "memory"}} = state) do
    {action, policy} = CheckpointPolicy.told(state.checkpoint, now_ms())
    checkpoint_action(%{state | checkpoint: policy}, action)
  end

  # On a durable storage a tell is safe once processed: keep only those the worker may not
  # have read (written at or after the oldest frame not known to be processed).
  defp after_tell(state) do
    oldest =
      case Outbox.unsettled(state.outbox) do
        [{:request, seq, _, _} | _] -> seq
        [{:notification, seq, _, _, _} | _] -> seq
        [] -> state.seq + 1
      end

    %{state | ledger: TrialLedger.safe_through(state.ledger, oldest - 1)}
  end

  defp now_ms, do: System.monotonic_time(:millisecond)

  defp checkpoint_action(state, :export), do: checkpoint(state)
  defp checkpoint_action(state, :wait), do: state

  defp checkpoint_action(state, {:arm, delay}) do
    Process.send_after(self(), :checkpoint, delay)
    state
  end

  defp checkpoint(%{status: :ready} = state) do
    case send_request(
           state,
           "export",
           ~s({"study":) <> state.study_json <> "}",
           {:checkpoint, state.seq + 1, now_ms()}
         ) do
      {:ok, state} -> %{state | checkpoint: CheckpointPolicy.exported(state.checkpoint)}
      {:error, _error, state} -> state
    end
  end

  defp checkpoint(state), do: state

  defp checkpointed(%{deleted: true} = state, _seq, _reply), do: state

  defp checkpointed(state, {seq, started}, {:ok, %{"snapshot" => snapshot}}) do
    now = now_ms()

    Telemetry.execute(
      [:optuna_bridge, :checkpoint, :stop],
      %{duration: System.convert_time_unit(now - started, :millisecond, :native)},
      %{study: state.study}
    )

    policy = CheckpointPolicy.finished(state.checkpoint, started, now)
    ledger = TrialLedger.safe_through(state.ledger, seq)
    %{state | snapshot: snapshot, ledger: ledger, checkpoint: policy}
  end

  defp checkpointed(state, _seq, {:error, %Error{kind: :method_not_found}}) do
    Logger.warning("optuna_bridge: the worker has no export method; checkpoints are off")
    %{state | checkpoint: CheckpointPolicy.disable(state.checkpoint)}
  end

  defp checkpointed(state, _seq, {:error, error}) do
    Logger.warning("optuna_bridge: checkpoint export failed: #{error.message}")
    state
  end

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

  defp dispatch(state, {:reply, id, outcome}) do
    {_settled, outbox} = Outbox.reply(state.outbox, id)
    complete(%{state | outbox: outbox}, id, outcome)
  end

  defp dispatch(state, {:unattributed_error, error}) do
    case Outbox.null_error(state.outbox, error.kind, state.max_frame) do
      {{:request, _seq, id, _bytes}, outbox} ->
        complete(%{state | outbox: outbox}, id, {:error, error})

      {{:notification, _seq, method, meta, _bytes}, outbox} ->
        error = %{error | method: method, data: attach_number(error.data, meta)}
        notification_failed(%{state | outbox: outbox}, error)

      {nil, _} ->
        Logger.warning("optuna_bridge: worker error for no frame: #{error.message}")
        state
    end
  end

  defp dispatch(%{status: :starting} = state, {:notification, "ready", params})
       when is_map(params),
       do: on_ready(state, params)

  defp dispatch(state, {:notification, "error", %Error{} = error}) do
    {entry, outbox} = Outbox.notification_error(state.outbox, error.method)

    data =
      case entry do
        {:notification, _, _, meta, _} -> attach_number(error.data, meta)
        nil -> error.data
      end

    notification_failed(%{state | outbox: outbox}, %{error | data: data})
  end

  defp dispatch(state, other) do
    Logger.debug("optuna_bridge: ignored frame #{inspect(other)}")
    state
  end

  defp attach_number(data, number) when is_integer(number),
    do: Map.put_new(data, "number", number)

  defp attach_number(data, _), do: data

  defp notification_failed(state, error) do
    ledger = TrialLedger.settled(state.ledger, error.data["number"])
    record_error(%{state | ledger: ledger}, error)
  end

  defp record_error(state, error) do
    Logger.warning(
      "optuna_bridge study #{inspect(state.study)}: #{error.method} failed: " <>
        "#{error.kind} (#{inspect(error.code)}): #{error.message}"
    )

    %{state | errors: Enum.take([error | state.errors], @max_errors)}
  end

  defp complete(state, id, outcome) do
    {waiter, pending} = Map.pop(state.pending, id)
    state = %{state | pending: pending}

    case waiter do
      {:call, ref, kind} when not is_map_key(state.calls, ref) ->
        late_reply(state, kind, outcome)

      {:call, ref, kind} ->
        {reply, state} = call_result(state, kind, outcome)
        method = state.calls[ref] && state.calls[ref].method
        reply = with {:error, e} <- reply, do: {:error, %{e | method: method}}
        reply_call(state, ref, reply)

      {:setup, step} ->
        setup_reply(state, step, outcome)

      {:checkpoint, seq, started} ->
        checkpointed(state, {seq, started}, outcome)

      :ignore ->
        with {:error, e} <- outcome, do: Logger.warning("optuna_bridge: #{e.message}")
        state

      nil ->
        state
    end
  end

  # The reply to a call that timed out (its caller already has `:timeout`): what it did is not
  # left unsaid. Trials a late `ask` created are told fail at once (nobody holds them); a late
  # `tell` reply (applied or refused) is kept in `errors/1`. See OptunaBridge.LateReply.
  defp late_reply(state, kind, outcome) do
    {_reply, state} = call_result(state, kind, outcome)

    case LateReply.classify(state.study, kind, outcome) do
      {:release, numbers, error} ->
        state =
          Enum.reduce(numbers, state, fn n, state ->
            params = LateReply.release_params(state.study, n)
            {_, state} = send_request(state, "tell", JSON.encode!(params), :ignore)
            state
          end)

        ledger = TrialLedger.finished(state.ledger, numbers)
        record_error(%{state | ledger: ledger}, error)

      {:record, error} ->
        record_error(state, error)

      :ignore ->
        state
    end
  end

  # A trial the worker says is finished (told elsewhere, or failed when its lease ended) is no
  # longer handed out.
  defp call_result(state, {verb, number}, {:error, %Error{kind: :trial_finished}} = error)
       when verb in [:tell, :renew],
       do:
         {error,
          %{state | ledger: refused(TrialLedger.finished(state.ledger, [number]), verb, number)}}

  # A refused tell changed nothing: no crash can lose it, so none reports it as :trial_lost.
  defp call_result(state, {:tell, number}, {:error, _} = error),
    do: {error, %{state | ledger: TrialLedger.refused(state.ledger, number)}}

  defp call_result(state, _kind, {:error, error}), do: {{:error, error}, state}

  defp call_result(state, :ask, {:ok, %{"trials" => trials}}) do
    asked = trials |> Enum.map(&Wire.asked/1) |> ClientId.not_held(state.ledger.asked)
    {{:ok, asked}, %{state | ledger: TrialLedger.handed_out(state.ledger, asked)}}
  end

  defp call_result(state, {:tell, _number}, {:ok, result}), do: {{:ok, Wire.trial(result)}, state}
  defp call_result(state, :report, {:ok, result}), do: {{:ok, result["should_prune"]}, state}

  defp call_result(state, :trials, {:ok, %{"trials" => trials}}) do
    trials = Enum.map(trials, &Wire.trial/1)
    {{:ok, trials}, %{state | ledger: TrialLedger.seen(state.ledger, trials)}}
  end

  defp call_result(state, :metric_names, {:ok, result}),
    do: {{:ok, result["metric_names"]}, state}

  defp call_result(state, {:renew, _}, {:ok, %{"lease_end" => lease_end}}),
    do: {{:ok, lease_end}, state}

  # Added trials are finished and never handed out; their numbers are remembered like tells
  # (frame seq: the newest written, an upper bound of the request's) until they are safe.
  defp call_result(state, :add_trials, {:ok, %{"numbers" => numbers}}) do
    remember? = not (memory?(state) and CheckpointPolicy.off?(state.checkpoint))
    ledger = TrialLedger.added(state.ledger, state.seq, numbers, remember?)
    {{:ok, numbers}, after_tell(%{state | ledger: ledger})}
  end

  defp call_result(state, :plot, {:ok, %{"format" => "plotly", "figure" => figure}}),
    do: {{:ok, figure}, state}

  defp call_result(state, :plot, {:ok, %{"format" => format, "data" => data}}) do
    case Base.decode64(data) do
      {:ok, bytes} ->
        {{:ok, bytes}, state}

      :error ->
        {{:error, Error.client(:internal_error, "the #{format} figure is not base64")}, state}
    end
  end

  defp call_result(state, :snapshot, {:ok, result}), do: {{:ok, result["snapshot"]}, state}

  # Deleting is final: no snapshot, ledger or checkpoint of the study is kept to bring it back.
  defp call_result(state, :delete, {:ok, result}) do
    state = %{state | deleted: true, snapshot: nil, ledger: TrialLedger.new()}
    {{:ok, result}, %{state | checkpoint: CheckpointPolicy.clean(state.checkpoint)}}
  end

  defp call_result(%{deleted: true} = state, {:checkpoint_now, _}, {:ok, _}),
    do: {{:ok, :checkpointed}, state}

  defp call_result(state, {:checkpoint_now, seq}, {:ok, %{"snapshot" => snapshot}}) do
    ledger = TrialLedger.safe_through(state.ledger, seq)
    {{:ok, :checkpointed}, %{state | snapshot: snapshot, ledger: ledger}}
  end

  defp call_result(state, _raw, {:ok, result}), do: {{:ok, result}, state}

  defp refused(ledger, :tell, number), do: TrialLedger.refused(ledger, number)
  defp refused(ledger, :renew, _number), do: ledger

  # ------------------------------------------------------------------------ failing callers

  defp fail_pending(state, error) do
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

  defp fail_all(state, error) do
    for {_ref, call} <- state.calls do
      Process.cancel_timer(call.timer)
      GenServer.reply(call.from, {:error, %{error | method: call.method}})
    end

    :ok
  end
end
