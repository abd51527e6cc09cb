defmodule OptunaBridge do
  @moduledoc """
  Optuna from Elixir: studies served by the repository's Python worker over a port (JSON-RPC 2.0
  frames, see `protocol/PROTOCOL.md` in the repository).

      {:ok, study} =
        OptunaBridge.Study.start_link(%{name: "quad", pruner: %{type: "median"}},
          x: [type: "float", low: -10.0, high: 10.0])

      {:ok, best} =
        OptunaBridge.optimize(study, fn trial -> (trial.params["x"] - 2) ** 2 end, n_trials: 50)

    * `optimize/3` and `report/3` — Optuna's `study.optimize`, the Elixir way.
    * `OptunaBridge.Study` — a process serving one study (ask/tell and every protocol method).
    * `OptunaBridge.Trial` — a trial; `OptunaBridge.Error` — errors, with a `kind` to match on.
    * `OptunaBridge.JSON` — the dependency-free JSON codec.
    * `OptunaBridge.Worker`, `OptunaBridge.Framing`, `OptunaBridge.RPC`, `OptunaBridge.Wire` —
      the port, the framing, the JSON-RPC frames and the value translation underneath.
  """

  alias OptunaBridge.{Error, Optimizer, Trial}

  @doc """
  Runs `objective` on trials of `study` until `n_trials` results are stored or `timeout` ms passed
  (at least one of the two is required; trials running at the timeout finish). Returns the best
  trial (`{:ok, %OptunaBridge.Trial{}}`; for several objectives `{:ok, pareto_front}`), or
  `{:error, %OptunaBridge.Error{}}`: the `ask` error that stopped the run, or
  `:objective_failed` when no trial completed because the objective failed. When a stop rule of
  the study holds (`stop:` in its config, `OptunaBridge.Study.set_stop/3`), no more trials start,
  the running ones finish, and the run returns `{:ok, best, %{rule: rule, detail: detail}}`
  (also emitted as the telemetry event `[:optuna_bridge, :study, :stopped]`).

  The objective gets an `OptunaBridge.Trial` (`trial.params["x"]`) and returns:

    * a number, or a list of numbers (several objectives): the trial is told `complete`;
    * `{:pruned, step}` (or `:pruned`): told `pruned` — use `report/3` to ask the pruner;
    * anything else, or it raises, throws or exits: told `fail`, with the reason in the trial's
      user attr `"fail_reason"` (a string, at most 2000 characters). The run goes on.

  Options:

    * `:n_trials` — how many trials to start;
    * `:timeout` — ms after which no new trial starts;
    * `:concurrency` (1) — objectives running at once, each in a task under
      `OptunaBridge.TaskSupervisor`;
    * `:trial_timeout` (`:infinity`) — ms after which a running objective is killed and its
      trial told `fail`;
    * `:call_timeout` — the timeout of each ask/tell (default: the study's);
    * `:ask` — options for `OptunaBridge.Study.ask/3` (`fixed_params:`, `search_space:`,
      `lease_s:`: each running trial's lease is renewed every `lease_s / 3` while its objective
      runs);
    * `:report` (false) — `true`: return `{:ok, %{best: trial | front | nil, completed: n,
      pruned: p, failed: f, retried: k, abandoned: a}}` instead of the best trial;
    * `:max_retries` (`max(10, n_trials)`) — how many asks, tells and results lost to worker
      crashes the run makes again.

  Through crashes: a result whose trial a worker crash lost runs again on a fresh trial (counted
  once, in `retried`); before returning, the results are made crash-safe
  (`OptunaBridge.Study.persist/2`) and checked against the study, so no trial the run asked is
  left RUNNING. A trial whose `ask` reply died with the worker comes back to the run's next
  `ask` (the study's client id, `resumed`) and runs within the budget; if the run ended first,
  it is told `fail` unrun (`abandoned`). If the calling process exits, `OptunaBridge.RunGuard` kills the running
  objectives and tells their trials `fail`.
  """
  @spec optimize(GenServer.server(), (Trial.t() -> term()), keyword()) ::
          {:ok, Trial.t() | [Trial.t()] | map()}
          | {:ok, Trial.t(), OptunaBridge.StopRules.stopped()}
          | {:error, Error.t()}
  def optimize(study, objective, opts \\ []), do: Optimizer.optimize(study, objective, opts)

  @doc """
  Reports an intermediate `value` at `step` for a trial handed out by `optimize/3` and answers
  the study's pruner: `:continue` or `:prune` (then return `{:pruned, step}`). A failed report
  raises the `OptunaBridge.Error`, which fails the trial.

      fn trial ->
        Enum.reduce_while(0..9, nil, fn step, _ ->
          loss = train_epoch(trial.params, step)
          case OptunaBridge.report(trial, step, loss) do
            :continue -> {:cont, loss}
            :prune -> {:halt, {:pruned, step}}
          end
        end)
      end
  """
  @spec report(Trial.t(), non_neg_integer(), number()) :: :continue | :prune
  def report(trial, step, value), do: Optimizer.report(trial, step, value)
end
