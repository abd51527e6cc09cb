"""The process's own I/O: stdin/stdout, the frame read budget, the spin-poll, the parent watch
and the structlog sink on stderr. The one place that touches the pipes; it drives the wire's
endpoint and knows nothing of studies or storages.
"""
