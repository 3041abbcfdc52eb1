"""Value types every layer shares: which lead (:mod:`.leads`) and what its fields mean (:mod:`.normalize`).

Pure: no I/O, imports nothing else from the worker.
"""
