"""optuna-bridge: run Optuna over stdin/stdout, one JSON frame per line."""

__version__ = "0.1.0"
