"""``make demo``: a seeded TPE study driven through a real worker process.

The objective is shaped like a training run's validation loss: a learning rate that is best near
3e-3 (on a log scale), a dropout that is best near 0.2, and an optimizer choice. Each trial goes
through the same frames any parent would send (``ask``, then ``tell``); the worker is the real
``python -m bridge_worker`` process on the embedded in-memory storage. At the end the worker draws
the optimization history and the parameter importances (``plot``, PNG) into ``results/``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from bridge_worker.client import Worker, WorkerError

RESULTS = Path(__file__).resolve().parent.parent / "results"
FIGURES = {"optimization_history": "demo_history.png", "param_importances": "demo_importances.png"}

SEARCH_SPACE = {
    "lr": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
    "dropout": {"type": "float", "low": 0.0, "high": 0.6},
    "optimizer": {"type": "categorical", "choices": ["adam", "sgd", "rmsprop"]},
}
OPTIMIZER_PENALTY = {"adam": 0.0, "rmsprop": 0.04, "sgd": 0.09}


def validation_loss(params: dict[str, object]) -> float:
    """A smooth toy landscape with its minimum (0.08) at lr=3e-3, dropout=0.2, adam."""
    lr = float(params["lr"])  # type: ignore[arg-type]
    dropout = float(params["dropout"])  # type: ignore[arg-type]
    lr_term = (math.log10(lr) - math.log10(3e-3)) ** 2 * 0.12
    dropout_term = (dropout - 0.2) ** 2 * 1.5
    return 0.08 + lr_term + dropout_term + OPTIMIZER_PENALTY[str(params["optimizer"])]


IMPORTANCE_NOTE = """\
  evaluator: PED-ANOVA, Optuna's default. It scores how differently a parameter is spread over
  the best 10% of the trials than over all the trials run, not how much the parameter moves the
  loss. TPE tries adam in most trials once it has found it best, so the best trials and all the
  trials share it and the optimizer scores low although a wrong choice costs up to 0.09."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="where the figures go (default: results/)"
    )
    args = parser.parse_args()
    interactive = sys.stdout.isatty()

    started = time.perf_counter()
    with Worker.spawn() as worker:
        ready = worker.ready
        assert ready is not None  # None only for a --jsonrpc strict worker
        print(
            f"worker pid {ready.pid} ready: optuna {ready.optuna}, storage {ready.storage}, "
            f"protocol {ready.protocol}"
        )
        worker.create(
            "demo",
            direction="minimize",
            metric_names=["validation loss"],
            sampler={"type": "tpe", "seed": args.seed},
            search_space=SEARCH_SPACE,
        )
        best_value, best_number = math.inf, -1
        for i in range(1, args.trials + 1):
            (trial,) = worker.ask("demo")
            loss = validation_loss(trial.params)
            worker.tell("demo", trial.number, loss)
            if loss < best_value:
                best_value, best_number = loss, trial.number
            line = (
                f"trial {i:3d}/{args.trials}  loss {loss:.4f}  "
                f"best {best_value:.4f} (trial {best_number})  {_bar(i, args.trials)}"
            )
            if interactive:
                print("\r" + line, end="", flush=True)
            elif i % 10 == 0 or i == args.trials:
                print(line, flush=True)
        if interactive:
            print()
        (best,) = worker.best("demo")
        elapsed = time.perf_counter() - started
        importances = worker.importance("demo")
        written = _write_figures(worker, args.results)

    print(
        f"\nbest trial #{best.number}: validation loss {best.values[0]:.5f}"  # type: ignore[index]
        f"  (optimum 0.08000)"
    )
    for name, value in best.params.items():
        print(f"  {name:<10} {value:.6g}" if isinstance(value, float) else f"  {name:<10} {value}")
    print(
        f"{args.trials} trials in {elapsed:.2f} s through the worker "
        f"({elapsed / args.trials * 1000:.1f} ms per trial, TPE included)"
    )
    print(
        "\nparameter importances ("
        + ", ".join(f"{name} {value:.2f}" for name, value in importances.items())
        + ")"
    )
    print(IMPORTANCE_NOTE)
    for path in written:
        print(f"figure: {path}")


def _write_figures(worker: Worker, directory: Path) -> list[Path]:
    """The optimization history and the parameter importances as PNG, drawn by the worker
    (``plot``); without the ``[plots]`` extra, say how to get them instead of failing."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, name in FIGURES.items():
        try:
            image = worker.plot("demo", kind, "png", width=900, height=500)
        except WorkerError as exc:
            if exc.kind != "missing_dependency":
                raise
            print(f"no figures: {exc.message}")
            return written
        assert isinstance(image, bytes)
        path = directory / name
        path.write_bytes(image)
        written.append(path)
    return written


def _bar(done: int, total: int, width: int = 24) -> str:
    filled = round(width * done / total)
    return "[" + "#" * filled + "." * (width - filled) + "]"


if __name__ == "__main__":
    main()
