# Tunes a ridge regression written in plain Elixir with optuna_bridge: a validation score per
# epoch, pruning with report/3, the history drawn by the worker. Run from clients/elixir after
# `mix optuna_bridge.install` (or with OPTUNA_BRIDGE_PYTHON set): mix run examples/tune_model.exs
# The same code, cell by cell, is examples/tune_model.livemd (test/optuna_bridge/example_test.exs
# checks that they agree and runs it).

# A generated data set: y = X·w + noise, 5 features, 240 rows (160 to train, 80 to validate).
:rand.seed(:exsss, {1, 2, 3})
w_true = [1.5, -2.0, 0.0, 0.7, 3.0]

rows =
  for _ <- 1..240 do
    x = for _ <- w_true, do: :rand.normal()
    {x, Enum.sum(Enum.zip_with(x, w_true, &(&1 * &2))) + 0.5 * :rand.normal()}
  end

{train, valid} = Enum.split(rows, 160)

defmodule Ridge do
  @moduledoc "Ridge regression trained by full-batch gradient descent, in plain Elixir."

  def predict(w, x), do: Enum.sum(Enum.zip_with(w, x, &(&1 * &2)))

  def mse(w, rows), do: Enum.sum(for {x, y} <- rows, do: (predict(w, x) - y) ** 2) / length(rows)

  # One epoch: one gradient step on (1/n)·Σ(w·x − y)² + alpha·|w|².
  def epoch(w, rows, lr, alpha) do
    n = length(rows)

    grad =
      Enum.reduce(rows, Enum.map(w, fn _ -> 0.0 end), fn {x, y}, acc ->
        err = predict(w, x) - y
        Enum.zip_with(acc, x, &(&1 + 2 * err * &2 / n))
      end)

    Enum.zip_with(w, grad, fn wi, gi -> wi - lr * (gi + 2 * alpha * wi) end)
  end
end

{:ok, study} =
  OptunaBridge.Study.start_link(
    %{
      name: "ridge",
      direction: "minimize",
      sampler: %{type: "tpe", seed: 7},
      pruner: %{type: "median", n_startup_trials: 5, n_warmup_steps: 3}
    },
    lr: [type: "float", low: 1.0e-3, high: 0.3, log: true],
    alpha: [type: "float", low: 1.0e-4, high: 1.0, log: true]
  )

epochs = 30

# Reports the validation MSE after every epoch; the study's pruner stops hopeless trials.
objective = fn trial ->
  %{"lr" => lr, "alpha" => alpha} = trial.params

  Enum.reduce_while(0..(epochs - 1), [0.0, 0.0, 0.0, 0.0, 0.0], fn epoch, w ->
    w = Ridge.epoch(w, train, lr, alpha)
    score = Ridge.mse(w, valid)

    case OptunaBridge.report(trial, epoch, score) do
      :prune -> {:halt, {:pruned, epoch}}
      :continue when epoch == epochs - 1 -> {:halt, score}
      :continue -> {:cont, w}
    end
  end)
end

# STOP RULE: this client has no stop rules yet (another change adds them). When it does, stop
# on one here (e.g. no better trial for 10 trials) instead of the plain trial budget below.
{:ok, best} = OptunaBridge.optimize(study, objective, n_trials: 25, concurrency: 2)
IO.puts("best validation MSE #{Float.round(hd(best.values), 4)} with #{inspect(best.params)}")

{:ok, png} = OptunaBridge.Study.plot(study, :optimization_history, format: :png)
path = Path.join(System.tmp_dir!(), "tune_model_history.png")
File.write!(path, png)
IO.puts("the history is drawn in #{path}")
OptunaBridge.Study.stop(study)
