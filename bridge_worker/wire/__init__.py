"""The wire: everything between a frame's bytes and a handler's typed call, with no study and no
pipe in it.

Framing (bytes <-> frames), the JSON-RPC endpoint, the msgspec schema (every params and result
struct), the closed set of errors, the limits a frame is checked against, and the dispatcher
(method name -> handler). Nothing here imports the storage, the studies or the handlers; the
layering is written down once in ``tests/install/test_layers.py``.
"""
