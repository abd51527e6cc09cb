"""optuna-dashboard on the storage the workers use: ``make dashboard STORAGE=<url>``.

Any ``--storage`` URL the worker accepts works here, because the storage is opened by the worker's
own code (:func:`bridge_worker.storage.handle.open_storage`) and handed to optuna-dashboard as an
object: ``journal:///path.log`` (with the worker's journal lock), ``redis://``, ``grpc://host:port``
(an ``optuna-bridge proxy``) and every SQLAlchemy URL. ``memory`` lives inside one worker process
and cannot be shown from outside; the URL is refused with that reason (exit 2), as is a URL the
worker itself would refuse.
"""

from __future__ import annotations

import argparse
import sys

from bridge_worker.storage.options import StorageOptions, check_options


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make dashboard", description="optuna-dashboard on a worker's storage"
    )
    parser.add_argument("storage", help="the URL given to the workers' --storage")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--check", action="store_true", help="open the storage and exit (what the tests run)"
    )
    args = parser.parse_args(argv)
    options = StorageOptions(url=args.storage)
    try:
        check_options(options)
    except ValueError as exc:
        parser.error(str(exc))
    if options.kind == "memory":
        parser.error(
            "a memory storage lives inside one worker and cannot be shown from "
            "outside: start the workers with a durable --storage (sqlite:///x.db, "
            "journal:///x.log, ...) and give the dashboard the same URL"
        )
    try:
        import optuna_dashboard
    except ImportError:
        parser.error(
            "optuna-dashboard is not installed: pip install 'optuna-bridge[dashboard]' "
            "(make venv installs it from the lock)"
        )
    # deferred: Optuna and the storage drivers load only once the URL was checked
    from bridge_worker.storage.handle import open_storage

    storage = open_storage(options)
    studies = storage.get_all_studies()
    print(f"{len(studies)} studies in the {options.kind} storage", file=sys.stderr)
    if args.check:
        return 0
    print(f"optuna-dashboard on http://{args.host}:{args.port}/", file=sys.stderr)
    optuna_dashboard.run_server(storage, host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
