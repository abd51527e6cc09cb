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
      the study; no exit reason does (the process's `terminate/2` only ends the worker).
    * **Arguments are checked in the caller.** A bad value or an unknown option raises
      `ArgumentError` in the calling process; params are encoded to JSON there too. No user
      input reaches the study process in a form that can crash it.
    * **Nothing waits forever.** Every call takes `timeout:` (default: the study's `:timeout`)
      and returns `{:error, %OptunaBridge.Error{kind: :timeout}}` past it. The port is written by
      a separate `OptunaBridge.PortOwner`, so a worker that stops reading never blocks this
      process; `stop/2` kills a worker that does not exit in its grace period by OS pid.
    * **Supervision-friendly.** `start_link/3` returns at once; the worker is spawned and the
      study created by the process once started (its `handle_continue/2`). Calls made
      meanwhile are queued (their timeouts run). `await_ready/2` waits for the study to exist,
      or returns why it could not. What needs no worker (the search space, the interpreter,
      one owner per study on a shared worker) is checked by the start call itself:
      `{:error, %Error{}}`, no process. A study the worker refuses (an existing name) stops
      the process with
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

  alias OptunaBridge.{Artifacts, Error, JSON, StopRules, Trial, WarmStart, Wire}
  alias OptunaBridge.Backpressure
  alias OptunaBridge.Study.{Call, Options, Params, Server}

  @type study :: GenServer.server()
  @type result(t) :: {:ok, t} | {:error, Error.t()}

  # This module is the API and its docs. The process is `OptunaBridge.Study.Server`; arguments are
  # checked and encoded in the caller by `Study.Options` (start), `Study.Params` (each call) and
  # `Study.Call` (the call itself, its deadline and telemetry).

  # -------------------------------------------------------------------------------------- API

  @doc """
  Starts the study process and returns at once; the worker is spawned and the study created
  by the process once started. Use `await_ready/2` to wait for it. Unknown or malformed options
  raise `ArgumentError` here. See the module doc and the README for the options.
  """
  @spec start_link(map() | keyword(), map() | keyword(), keyword()) :: GenServer.on_start()
  def start_link(study_config, search_space, opts \\ []) do
    with {:ok, gen_opts, args} <- Options.prepare_start(study_config, search_space, opts),
         do: GenServer.start_link(Server, args, gen_opts)
  end

  @doc """
  Like `start_link/3` but not linked to the caller: a study the worker refuses then stops without
  taking the caller with it (`await_ready/2` says why). The form for iex and Livebook.
  """
  @spec start(map() | keyword(), map() | keyword(), keyword()) :: GenServer.on_start()
  def start(study_config, search_space, opts \\ []) do
    with {:ok, gen_opts, args} <- Options.prepare_start(study_config, search_space, opts),
         do: GenServer.start(Server, args, gen_opts)
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
    case Call.do_call(study, :await_ready, timeout) do
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
    Call.request(study, "ask", Params.ask(n, opts), :ask, opts)
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
      Keyword.split(Wire.validate_options!(opts, [:timeout | Params.tell_keys()]), [:timeout])

    Call.request(
      study,
      "tell",
      Wire.tell_params(number, value, tell_opts),
      {:tell, number},
      call_opts
    )
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
         do: GenServer.cast(study, {:tell, number, Call.encode!(params)})
  end

  @doc false
  @deprecated "tell/4 is synchronous now"
  def tell_sync(study, number, value, opts \\ []), do: tell(study, number, value, opts)

  @doc """
  Extends the lease of a running trial asked with `lease_s:` (or gives one with `lease_s:`):
  `{:ok, lease_end}`, the new end as an ISO 8601 string (now plus the length). Options:
  `:lease_s` (a new length, the trial's own from then on; default the trial's own), `:timeout`. A finished trial (told, or failed by its lease) is
  `{:error, %Error{kind: :trial_finished}}`; a trial lost in a worker restart `:trial_lost`.
  """
  @spec renew(study(), non_neg_integer(), keyword()) :: result(String.t())
  def renew(study, number, opts \\ []) do
    Call.request(study, "renew", Params.renew(number, opts), {:renew, number}, opts)
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
    Call.request(study, "add_trials", Wire.add_trials_params(trials), :add_trials, opts)
  end

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
    Call.request(study, "plot", Params.plot(kind, opts), :plot, opts)
  end

  @doc "Reports an intermediate value: `{:ok, should_prune?}`. Option: `:timeout`."
  @spec report(study(), non_neg_integer(), non_neg_integer(), number(), keyword()) ::
          result(boolean())
  def report(study, number, step, value, opts \\ []) do
    Call.request(study, "report", Params.report(number, step, value, opts), :report, opts)
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
    Call.request(study, "best", Params.best(opts), :trials, opts)
  end

  @doc """
  All trials, in number order. Options: `states: ["complete", ...]` (strings or atoms),
  `datetimes: true` (adds `:datetime_start` / `:datetime_complete`), `offset:` (skip this many,
  default 0) and `limit:` (at most this many): one page, e.g. `offset: 200, limit: 100`; pages
  keep a large study's replies under the worker's reply size limit. `:timeout`.
  """
  @spec trials(study(), keyword()) :: result([Wire.trial()])
  def trials(study, opts \\ []) do
    Call.request(study, "trials", Params.trials(opts), :trials, opts)
  end

  @doc """
  The study's metric names (`metric_names:` in the study config, Optuna's `set_metric_names`):
  `{:ok, ["accuracy", ...]}`, or `{:ok, nil}` when it has none. Option: `:timeout`.
  """
  @spec metric_names(study(), keyword()) :: result([String.t()] | nil)
  def metric_names(study, opts \\ []) do
    opts = Wire.validate_options!(opts, [:timeout])
    Call.request(study, "trials", %{"limit" => 1}, :metric_names, opts)
  end

  @doc "The study's snapshot (the worker's `export`), as decoded JSON. Option: `:timeout`."
  @spec export(study(), keyword()) :: result(map())
  def export(study, opts \\ []) do
    Call.request(study, "export", %{}, :snapshot, Wire.validate_options!(opts, [:timeout]))
  end

  @doc """
  Makes every result told so far survive a worker crash, and returns when it does: on an
  in-memory study a checkpoint (an `export` kept by this process) is taken now; on a durable
  storage every replied tell is already stored, so this answers at once. `{:ok, :checkpointed}` or
  `{:ok, :durable}`. `OptunaBridge.optimize/3` calls it before returning. Option: `:timeout`.
  """
  @spec persist(study(), keyword()) :: result(:checkpointed | :durable)
  def persist(study, opts \\ []) do
    Call.request(study, "export", %{}, :checkpoint_now, Wire.validate_options!(opts, [:timeout]))
  end

  @doc """
  Enqueues a trial with these params (Optuna's `enqueue_trial`): the next `ask` hands it out.
  `{:ok, enqueued?}` (`false` when `skip_if_exists: true` found the same params). Options:
  `:user_attrs`, `:skip_if_exists`, `:timeout`.
  """
  @spec enqueue(study(), map() | keyword(), keyword()) :: result(boolean())
  def enqueue(study, params, opts \\ []) do
    with {:ok, %{"enqueued" => enqueued}} <-
           Call.request(study, "enqueue", Params.enqueue(params, opts), :raw, opts),
         do: {:ok, enqueued}
  end

  @doc """
  Sets user attrs on the study (`number: nil`, the default) or on a running trial. Options:
  `:number`, `:timeout`.
  """
  @spec set_attrs(study(), map() | keyword(), keyword()) :: :ok | {:error, Error.t()}
  def set_attrs(study, user_attrs, opts \\ []) do
    wire = Params.set_attrs(user_attrs, opts)
    with {:ok, _} <- Call.request(study, "set_attrs", wire, :raw, opts), do: :ok
  end

  @doc """
  Parameter importances (Optuna's default evaluator): `{:ok, %{"lr" => 0.8, ...}}`. Options:
  `:params` (names to evaluate), `:objective` (index, several objectives), `:timeout`.
  """
  @spec importance(study(), keyword()) :: result(%{optional(String.t()) => float()})
  def importance(study, opts \\ []) do
    with {:ok, %{"importances" => imp}} <-
           Call.request(study, "importance", Params.importance(opts), :raw, opts),
         do: {:ok, imp}
  end

  @doc """
  Imports a snapshot (as `export/1` returns it) into this study's worker and storage:
  `{:ok, %{"study" => name, "n_trials" => n}}`. Options: `:as` (another study name),
  `:overwrite` (default false: an existing study is `:study_exists`), `:timeout`.
  """
  @spec import(study(), map(), keyword()) :: result(map())
  def import(study, snapshot, opts \\ []) when is_map(snapshot) do
    Call.raw_request(study, "import", Params.import(snapshot, opts), opts)
  end

  @doc """
  The studies in this study's worker storage: `{:ok, [%{"study" => name, "directions" => [...],
  "n_trials" => n, "n_running" => n}]}`. Option: `:timeout`.
  """
  @spec list(study(), keyword()) :: result([map()])
  def list(study, opts \\ []) do
    opts = Wire.validate_options!(opts, [:timeout])

    with {:ok, %{"studies" => studies}} <- Call.raw_request(study, "list", %{}, opts),
         do: {:ok, studies}
  end

  @doc "Round trip to the worker: `:ok` or an error (e.g. `:timeout`). Option: `:timeout`."
  @spec ping(study(), keyword()) :: :ok | {:error, Error.t()}
  def ping(study, opts \\ []) do
    opts = Wire.validate_options!(opts, [:timeout])
    with {:ok, _} <- Call.raw_request(study, "ping", %{}, opts), do: :ok
  end

  @doc """
  Deletes the study from the worker's storage, explicitly (nothing else ever deletes it). The
  process stays up; `stop(study, delete: true)` deletes and stops. Option: `:timeout`.
  """
  @spec delete(study(), keyword()) :: :ok | {:error, Error.t()}
  def delete(study, opts \\ []) do
    case Call.request(study, "delete", %{}, :delete, Wire.validate_options!(opts, [:timeout])) do
      {:ok, _} -> :ok
      error -> error
    end
  end

  @doc "Uploads a file as an artifact of a trial or the study: see `OptunaBridge.Artifacts`."
  defdelegate put_artifact(study, number, source, opts \\ []), to: Artifacts

  @doc "Downloads an artifact (to a binary, or `to:` a file): see `OptunaBridge.Artifacts`."
  defdelegate get_artifact(study, artifact_id, opts \\ []), to: Artifacts

  @doc "Lists artifacts of the study or of a trial: see `OptunaBridge.Artifacts`."
  defdelegate artifacts(study, number \\ nil, opts \\ []), to: Artifacts

  @doc "Copies trials of another study into this one: see `OptunaBridge.WarmStart`."
  defdelegate copy_trials(study, from, opts \\ []), to: WarmStart

  @doc "Replaces or clears (`nil`) the study's stop rules: see `OptunaBridge.StopRules`."
  defdelegate set_stop(study, rules, opts \\ []), to: StopRules

  @doc false
  # For the modules holding typed functions of newer methods: `study` is added to params.
  @spec study_request(study(), String.t(), map(), keyword()) :: result(JSON.value())
  def study_request(study, method, params, opts),
    do: Call.request(study, method, params, :raw, opts)

  @doc """
  Any method, with these params sent as they are (no `study` added): the raw decoded result.
  Option: `:timeout`.
  """
  @spec request(study(), String.t(), map(), keyword()) :: result(JSON.value())
  def request(study, method, params \\ %{}, opts \\ [])

  def request(study, method, params, opts) when is_binary(method) and is_map(params) do
    opts = Wire.validate_options!(opts, [:timeout])
    Call.do_call(study, {:request, method, Call.encode!(params), false, :raw}, opts[:timeout])
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
    Call.unwrap(Call.do_call(study, :errors, Keyword.get(opts, :timeout, 5_000)))
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
    Call.unwrap(Call.do_call(study, :info, Keyword.get(opts, :timeout, 5_000)))
  end

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
end
