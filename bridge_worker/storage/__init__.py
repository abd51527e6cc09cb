"""The operator's ``--storage``: one module per backend (memory, rdb, journal, redis, grpc)
behind the small interface of :mod:`bridge_worker.storage.backend`, and the handle that opens the
chosen one lazily. Importing this package (or :mod:`.options`) imports no Optuna, so the command
line is checked at once.
"""
