"""The domain: the studies a worker serves (the registry, the only mutable state), each study's
ask/tell/report rules, snapshots and imports, samplers, search spaces, figures, leases and
heartbeats. Built on the storage package; knows nothing of frames or handlers.
"""
