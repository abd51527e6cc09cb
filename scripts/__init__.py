"""The measurement, recording and CI scripts. A package so that the scripts which share code (with
each other or with ``tests/``: throw-away servers, fast study builders) run from the repository
root as ``python -m scripts.NAME`` without editing ``sys.path``; the others also run as files."""
