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

  alias OptunaBridge.{Error, StopRules, Study, Trial, Wire}

  @options [:n_trials, :timeout, :concurrency, :trial_timeout, :call_timeout, :ask]
  @reason_limit 2_000

  @doc "See `OptunaBridge.optimize/3`."
  @spec optimize(GenServer.server(), (Trial.t() -> term()), keyword()) ::
          {:ok, Trial.t() | [Trial.t()]}
          | {:ok, Trial.t(), StopRules.stopped()}
          | {:error, Error.t()}
  def optimize(study, objective, opts) do
    unless is_function(objective, 1),
      do: raise(ArgumentError, "the objective must be a function of one argument (the trial)")

    opts = Wire.validate_options!(opts, @options)
    config = config!(opts)

    state = %{
      study: study,
      objective: objective,
      config: config,
      deadline: deadline(config.timeout),
      started: 0,
      running: %{},
      failures: [],
      error: nil,
      stopped: nil
    }

    state |> fill() |> loop() |> finish()
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

    %{
      n_trials: n_trials,
      timeout: timeout,
      concurrency: concurrency,
      trial_timeout: trial_timeout,
      call_opts: call_opts,
      ask_opts: ask_opts ++ call_opts
    }
  end

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

        task =
          Task.Supervisor.async_nolink(OptunaBridge.TaskSupervisor, fn -> objective.(trial) end)

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

      {:error, error} ->
        Logger.error("optimize: ask failed, no more trials start: #{Exception.message(error)}")
        %{state | error: error}
    end
  end

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
        finished(acc, ref, {:fail, reason}, trial)

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
    {{_task, {trial, _}}, _} = Map.pop(state.running, ref)
    finished(state, ref, outcome, trial)
  end

  defp finished(state, ref, outcome, %Trial{number: number}) do
    state = %{state | running: Map.delete(state.running, ref)}
    opts = state.config.call_opts

    {told, state} =
      case outcome do
        {:complete, value} ->
          {Study.tell(state.study, number, value, opts), state}

        :pruned ->
          {Study.tell(state.study, number, nil, [state: :pruned] ++ opts), state}

        {:fail, reason} ->
          reason = String.slice(reason, 0, @reason_limit)
          Logger.warning("optimize: trial #{number} failed: #{reason}")
          attrs = %{"fail_reason" => reason}

          {Study.tell(state.study, number, nil, [state: :fail, user_attrs: attrs] ++ opts),
           %{state | failures: [reason | state.failures]}}
      end

    case told do
      {:ok, _} ->
        if stop = StopRules.stopped(told), do: stopped(state, stop), else: state

      {:error, error} ->
        Logger.error("optimize: tell of trial #{number} failed: #{Exception.message(error)}")
        state
    end
  end

  # The study's stop rule holds: no more trials start, running ones finish (once per run).
  defp stopped(%{stopped: nil} = state, stop) do
    Logger.info("optimize: the study stopped (#{stop.rule} rule)")
    StopRules.emit(state.study, stop)
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
    case Study.best_trials(state.study, state.config.call_opts) do
      {:ok, [%Trial{values: [_]} = best]} ->
        {:ok, best}

      {:ok, front} ->
        {:ok, front}

      {:error, %Error{kind: :no_completed_trials}} when state.failures != [] ->
        {:error,
         Error.client(:objective_failed, "no trial completed: the objective failed", %{
           "failures" => length(state.failures),
           "last_reason" => hd(state.failures)
         })}

      error ->
        error
    end
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
