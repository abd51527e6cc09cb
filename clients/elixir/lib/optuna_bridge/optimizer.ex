defmodule OptunaBridge.Optimizer do
  @moduledoc """
  The loop behind `OptunaBridge.optimize/3`: ask, run the objective in a supervised task, tell.

  Why tasks: an objective is user code. Each run is a `Task.Supervisor.async_nolink/2` child of
  `OptunaBridge.TaskSupervisor`, so a raise, a throw or an exit ends only that task; the loop
  (in the caller's process) sees it as a `:DOWN` and tells the trial `fail` with the reason in its
  user attrs (`"fail_reason"`). `concurrency` tasks run at once; the loop itself never blocks
  longer than the next deadline (`:timeout` for the whole run, `:trial_timeout` per trial).
  """

  require Logger

  alias OptunaBridge.{Error, RunGuard, StopRules, Study, Telemetry, Trial, Wire}

  @options [
    :n_trials,
    :timeout,
    :concurrency,
    :trial_timeout,
    :call_timeout,
    :ask,
    :report,
    :max_retries
  ]
  @reason_limit 2_000
  # an ask or a tell that a worker crash undid: the run asks again / runs the objective again
  @recoverable [:worker_crashed, :trial_lost]

  @doc "See `OptunaBridge.optimize/3`."
  @spec optimize(GenServer.server(), (Trial.t() -> term()), keyword()) ::
          {:ok, Trial.t() | [Trial.t()] | map()}
          | {:ok, Trial.t(), StopRules.stopped()}
          | {:error, Error.t()}
  def optimize(study, objective, opts) do
    unless is_function(objective, 1),
      do: raise(ArgumentError, "the objective must be a function of one argument (the trial)")

    opts = Wire.validate_options!(opts, @options)
    config = config!(opts)
    guard = RunGuard.start(study, config.lease_ms)

    state = %{
      study: study,
      study_name: telemetry_name(study),
      objective: objective,
      config: config,
      deadline: deadline(config.timeout),
      guard: guard,
      started: 0,
      running: %{},
      told: %{},
      retried: 0,
      recoveries: 0,
      asks_lost: false,
      abandoned: 0,
      failures: [],
      error: nil,
      stopped: nil
    }

    try do
      state |> fill() |> loop() |> settle() |> release_orphans() |> finish()
    after
      RunGuard.stop(guard)
    end
  end

  # The study's name for the trial events' metadata, asked once per run and only when they are
  # emitted.
  defp telemetry_name(study) do
    with true <- Telemetry.enabled?(), %{study: name} <- Study.info(study) do
      name
    else
      _ -> nil
    end
  end

  defp config!(opts) do
    n_trials = Keyword.get(opts, :n_trials)
    timeout = Keyword.get(opts, :timeout)

    unless n_trials == nil or (is_integer(n_trials) and n_trials >= 0),
      do: Wire.bad_option!(:n_trials, n_trials)

    unless timeout == nil or (is_integer(timeout) and timeout >= 0),
      do: Wire.bad_option!(:timeout, timeout)

    if n_trials == nil and timeout == nil,
      do: raise(ArgumentError, "optimize/3 needs n_trials:, timeout: (ms) or both")

    concurrency = Keyword.get(opts, :concurrency, 1)

    unless is_integer(concurrency) and concurrency >= 1,
      do: Wire.bad_option!(:concurrency, concurrency)

    trial_timeout = Keyword.get(opts, :trial_timeout, :infinity)

    unless trial_timeout == :infinity or (is_integer(trial_timeout) and trial_timeout > 0),
      do: Wire.bad_option!(:trial_timeout, trial_timeout)

    call_opts =
      case Keyword.fetch(opts, :call_timeout) do
        {:ok, t} when is_integer(t) and t >= 0 -> [timeout: t]
        {:ok, t} -> Wire.bad_option!(:call_timeout, t)
        :error -> []
      end

    ask_opts = Keyword.get(opts, :ask, [])
    unless Keyword.keyword?(ask_opts), do: Wire.bad_option!(:ask, ask_opts)

    report = Keyword.get(opts, :report, false)
    unless is_boolean(report), do: Wire.bad_option!(:report, report)

    max_retries = Keyword.get(opts, :max_retries, max(10, n_trials || 0))

    unless is_integer(max_retries) and max_retries >= 0,
      do: Wire.bad_option!(:max_retries, max_retries)

    %{
      n_trials: n_trials,
      timeout: timeout,
      concurrency: concurrency,
      trial_timeout: trial_timeout,
      call_opts: call_opts,
      ask_opts: ask_opts ++ call_opts,
      lease_ms: lease_ms(ask_opts[:lease_s]),
      report: report,
      max_retries: max_retries
    }
  end

  defp lease_ms(nil), do: nil
  defp lease_ms(s) when is_number(s) and s > 0, do: max(round(s * 1000), 1)
  defp lease_ms(s), do: Wire.bad_option!(:lease_s, s)

  defp deadline(nil), do: :infinity
  defp deadline(ms), do: System.monotonic_time(:millisecond) + ms

  defp more?(%{error: %Error{}}), do: false
  defp more?(%{stopped: %{}}), do: false

  defp more?(%{config: config, started: started, deadline: deadline}) do
    (config.n_trials == nil or started < config.n_trials) and
      (deadline == :infinity or System.monotonic_time(:millisecond) < deadline)
  end

  # Starts trials until `concurrency` run, or no more may start.
  defp fill(state) do
    if map_size(state.running) < state.config.concurrency and more?(state),
      do: state |> start_trial() |> fill(),
      else: state
  end

  defp start_trial(state) do
    case Study.ask(state.study, 1, state.config.ask_opts) do
      {:ok, [trial]} ->
        trial = %Trial{trial | study: state.study}
        objective = state.objective

        name = state.study_name

        task =
          Task.Supervisor.async_nolink(OptunaBridge.TaskSupervisor, fn ->
            Telemetry.span(
              [:optuna_bridge, :trial],
              fn -> %{study: name, number: trial.number, params: trial.params} end,
              fn ->
                result = objective.(trial)
                {result, %{}, %{state: trial_state(returned(result))}}
              end
            )
          end)

        RunGuard.started(state.guard, task.pid, trial.number)
        entry = {trial, trial_deadline(state.config.trial_timeout)}

        %{
          state
          | started: state.started + 1,
            running: Map.put(state.running, task.ref, {task, entry})
        }

      # only trials this process still runs came back (see OptunaBridge.ClientId): ask again
      {:ok, []} ->
        state

      {:error, %Error{kind: :study_stopped}} = stopped ->
        stopped(state, StopRules.stopped(stopped))

      {:error, %Error{kind: kind} = error} when kind in @recoverable ->
        # the worker crashed under the ask: the study restarts it; ask again (bounded). The
        # ask may have stored a trial whose reply died: release_orphans/1 looks for it.
        state = %{state | asks_lost: true}

        case recover(state) do
          {:ok, state} ->
            start_trial(state)

          :exhausted ->
            Logger.error(
              "optimize: ask failed, no more trials start: #{Exception.message(error)}"
            )

            %{state | error: error}
        end

      {:error, error} ->
        Logger.error("optimize: ask failed, no more trials start: #{Exception.message(error)}")
        %{state | error: error}
    end
  end

  defp recover(%{recoveries: n, config: %{max_retries: max}}) when n >= max, do: :exhausted
  defp recover(state), do: {:ok, %{state | recoveries: state.recoveries + 1}}

  defp trial_state({:complete, _}), do: :complete
  defp trial_state(:pruned), do: :pruned
  defp trial_state({:fail, _}), do: :fail

  defp trial_deadline(:infinity), do: :infinity
  defp trial_deadline(ms), do: System.monotonic_time(:millisecond) + ms

  defp loop(%{running: running} = state) when map_size(running) == 0, do: state

  defp loop(state) do
    receive do
      {ref, result} when is_map_key(state.running, ref) ->
        Process.demonitor(ref, [:flush])
        state |> finished(ref, returned(result)) |> fill() |> loop()

      {:DOWN, ref, :process, _pid, reason} when is_map_key(state.running, ref) ->
        state |> finished(ref, {:fail, "exited: " <> inspect(reason)}) |> fill() |> loop()
    after
      wait_ms(state) ->
        state |> expire() |> fill() |> loop()
    end
  end

  defp wait_ms(state) do
    now = System.monotonic_time(:millisecond)

    state.running
    |> Enum.map(fn {_ref, {_task, {_trial, deadline}}} -> deadline end)
    |> Enum.reject(&(&1 == :infinity))
    |> case do
      [] -> :infinity
      deadlines -> max(Enum.min(deadlines) - now, 0)
    end
  end

  defp expire(state) do
    now = System.monotonic_time(:millisecond)

    Enum.reduce(state.running, state, fn
      {ref, {task, {trial, deadline}}}, acc when deadline != :infinity and deadline <= now ->
        Task.Supervisor.terminate_child(OptunaBridge.TaskSupervisor, task.pid)
        Process.demonitor(ref, [:flush])

        reason = "timed out after #{acc.config.trial_timeout} ms (trial_timeout)"
        finished(acc, ref, {:fail, reason}, {task, trial})

      _, acc ->
        acc
    end)
  end

  # What the objective returned, as what to tell.
  defp returned(value) when is_number(value), do: {:complete, value}

  defp returned([_ | _] = values) do
    if Enum.all?(values, &is_number/1),
      do: {:complete, values},
      else: {:fail, "returned a list that is not all numbers: " <> inspect(values)}
  end

  defp returned({:pruned, step}) when is_integer(step), do: :pruned
  defp returned(:pruned), do: :pruned

  defp returned(other),
    do:
      {:fail,
       "returned #{inspect(other)}: expected a number, a list of numbers or {:pruned, step}"}

  defp finished(state, ref, outcome) do
    {{task, {trial, _}}, _} = Map.pop(state.running, ref)
    finished(state, ref, outcome, {task, trial})
  end

  defp finished(state, ref, outcome, {task, %Trial{number: number}}) do
    RunGuard.finished(state.guard, task.pid)
    state = %{state | running: Map.delete(state.running, ref)}

    state =
      case outcome do
        {:fail, reason} ->
          reason = String.slice(reason, 0, @reason_limit)
          Logger.warning("optimize: trial #{number} failed: #{reason}")
          %{state | failures: [reason | state.failures]}

        _ ->
          state
      end

    outcome = with {:fail, reason} <- outcome, do: {:fail, String.slice(reason, 0, @reason_limit)}

    tell(state, number, outcome, _again = true)
  end

  defp tell_args({:complete, value}), do: {value, []}
  defp tell_args(:pruned), do: {nil, [state: :pruned]}

  defp tell_args({:fail, reason}),
    do: {nil, [state: :fail, user_attrs: %{"fail_reason" => reason}]}

  defp expected_state({:complete, _}), do: :complete
  defp expected_state(:pruned), do: :pruned
  defp expected_state({:fail, _}), do: :fail

  # Tells one result. Its outcome is kept until `settle/1` has seen it stored; a tell a crash
  # undid is written again once (the restarted study queues it), a trial the crash lost is run
  # again on a fresh trial.
  defp tell(state, number, outcome, again?) do
    {value, opts} = tell_args(outcome)
    state = %{state | told: Map.put(state.told, number, outcome)}

    case Study.tell(state.study, number, value, opts ++ state.config.call_opts) do
      {:ok, _} = told ->
        if stop = StopRules.stopped(told), do: stopped(state, stop), else: state

      {:error, %Error{kind: :worker_crashed}} when again? ->
        tell(state, number, outcome, false)

      {:error, %Error{kind: kind} = error} when kind in @recoverable ->
        Logger.warning("optimize: trial #{number}'s result was lost: #{Exception.message(error)}")
        retry(state, number)

      {:error, error} ->
        # e.g. :trial_finished (the first write was stored) or a timeout: settle/1 checks
        Logger.warning("optimize: tell of trial #{number}: #{Exception.message(error)}")
        state
    end
  end

  defp tell_again(state, number, outcome) do
    case recover(state) do
      {:ok, state} -> tell(state, number, outcome, true)
      :exhausted -> state
    end
  end

  # A result lost to a crash: forgotten, and one more trial may start in its place.
  defp retry(state, number) do
    state = %{state | told: Map.delete(state.told, number)}

    case recover(state) do
      {:ok, state} ->
        %{state | started: state.started - 1, retried: state.retried + 1}

      :exhausted ->
        Logger.error("optimize: max_retries reached; trial #{number} is not run again")
        state
    end
  end

  # When no trial runs any more: the results told are made crash-safe (a checkpoint in memory),
  # then compared with what the study stored. A result missing (a restart rolled it back) runs
  # again; a trial still running (its tell never landed) is told again. Repeats until all stored
  # or the retries are used up.
  defp settle(%{error: %Error{}} = state), do: state
  defp settle(%{told: told} = state) when map_size(told) == 0, do: state

  defp settle(state) do
    opts = state.config.call_opts

    numbers = Map.keys(state.told)

    with {:ok, _} <- Study.persist(state.study, opts),
         {:ok, stored} <- stored_states(state.study, Enum.min(numbers), Enum.max(numbers), opts) do
      before = state.recoveries

      state =
        Enum.reduce(state.told, state, fn {number, outcome}, state ->
          expected = expected_state(outcome)

          case stored[number] do
            ^expected -> state
            :running -> tell_again(state, number, outcome)
            _lost -> retry(state, number)
          end
        end)

      # another pass only while something was done about a difference (bounded by max_retries)
      if state.recoveries > before,
        do: state |> fill() |> loop() |> settle(),
        else: state
    else
      {:error, %Error{kind: kind}} when kind in @recoverable ->
        case recover(state) do
          {:ok, state} -> settle(state)
          :exhausted -> state
        end

      {:error, error} ->
        Logger.error("optimize: could not check the results: #{Exception.message(error)}")
        state
    end
  end

  # The states of trials `from..to` (numbers are dense in a study), in pages that keep each
  # reply well under the worker's reply size limit.
  @page 500
  defp stored_states(study, from, to, opts, acc \\ %{}) do
    case Study.trials(study, [offset: from, limit: @page] ++ opts) do
      {:ok, trials} ->
        acc = Enum.into(trials, acc, &{&1.number, &1.state})

        if length(trials) == @page and from + @page <= to,
          do: stored_states(study, from + @page, to, opts, acc),
          else: {:ok, acc}

      error ->
        error
    end
  end

  # An ask whose reply died with a worker may have stored a trial nobody got. On a durable
  # storage the new worker hands it out again first to this client's next ask (`resumed`, see
  # OptunaBridge.ClientId), so a run that goes on runs it within its budget. A run that ended
  # first (its timeout, a stop rule, an error) leaves it here: a RUNNING trial of this study's
  # client that no caller of this study process holds. It is told fail, once the loop and
  # settle/1 are done (so no trial of this run still runs). Costs one `trials` read of the running
  # trials, only in a run that lost an ask.
  defp release_orphans(%{asks_lost: false} = state), do: state

  defp release_orphans(state) do
    opts = state.config.call_opts

    # trials first: a hand-made ask answered before this read is in `held` read after it
    with {:ok, running} <- Study.trials(state.study, [states: [:running]] ++ opts),
         %{client: client, held: held} when is_binary(client) <- Study.info(state.study, opts) do
      held = MapSet.new(held)

      running
      |> Enum.filter(&(&1.extra["client"] == client and not MapSet.member?(held, &1.number)))
      |> Enum.reduce(state, &abandon(&2, &1.number))
    else
      %{client: nil} ->
        state

      {:error, error} ->
        Logger.error(
          "optimize: could not look for trials whose ask died: #{Exception.message(error)}"
        )

        state
    end
  end

  @orphan_reason "optimize/3: its ask's reply was lost in a worker crash and the run ended " <>
                   "before it could run"

  defp abandon(state, number) do
    opts =
      [state: :fail, user_attrs: %{"fail_reason" => @orphan_reason}] ++ state.config.call_opts

    case Study.tell(state.study, number, nil, opts) do
      {:ok, _} ->
        Logger.warning("optimize: trial #{number} told fail: #{@orphan_reason}")
        %{state | abandoned: state.abandoned + 1}

      {:error, error} ->
        Logger.warning("optimize: trial #{number} (ask lost): #{Exception.message(error)}")
        state
    end
  end

  # The study's stop rule holds: no more trials start, running ones finish (once per run).
  defp stopped(%{stopped: nil} = state, stop) do
    Logger.info("optimize: the study stopped (#{stop.rule} rule)")
    StopRules.emit(state.study_name, stop)
    %{state | stopped: stop}
  end

  defp stopped(state, _stop), do: state

  defp finish(%{error: %Error{} = error}), do: {:error, error}

  defp finish(%{stopped: %{} = stop} = state) do
    case finish(%{state | stopped: nil}) do
      {:ok, %Trial{} = best} -> {:ok, best, stop}
      other -> other
    end
  end

  defp finish(state) do
    case {Study.best_trials(state.study, state.config.call_opts), state.config.report} do
      {{:ok, best}, true} ->
        {:ok, summary(state, best)}

      {{:ok, [%Trial{values: [_]} = best]}, false} ->
        {:ok, best}

      {{:ok, front}, false} ->
        {:ok, front}

      {{:error, %Error{kind: :no_completed_trials}}, true} ->
        {:ok, summary(state, nil)}

      {{:error, %Error{kind: :no_completed_trials}}, false} when state.failures != [] ->
        {:error,
         Error.client(:objective_failed, "no trial completed: the objective failed", %{
           "failures" => length(state.failures),
           "last_reason" => hd(state.failures)
         })}

      {error, _} ->
        error
    end
  end

  defp summary(state, best) do
    counts = Enum.frequencies_by(state.told, fn {_n, outcome} -> expected_state(outcome) end)

    best =
      case best do
        [%Trial{values: [_]} = one] -> one
        other -> other
      end

    %{
      best: best,
      completed: Map.get(counts, :complete, 0),
      pruned: Map.get(counts, :pruned, 0),
      failed: Map.get(counts, :fail, 0),
      retried: state.retried,
      abandoned: state.abandoned
    }
  end

  @doc "See `OptunaBridge.report/3`."
  @spec report(Trial.t(), non_neg_integer(), number()) :: :continue | :prune
  def report(%Trial{study: nil}, _step, _value),
    do: raise(ArgumentError, "report/3 needs a trial handed out by OptunaBridge.optimize/3")

  def report(%Trial{study: study, number: number}, step, value) do
    case Study.report(study, number, step, value) do
      {:ok, true} -> :prune
      {:ok, false} -> :continue
      {:error, error} -> raise error
    end
  end
end
