"""Speed and memory benchmarks against peer libraries; run with ``neuroadapt bench NAME``.

A benchmark is a module here that defines ``run(config_overrides) -> dict``; its name is the
file stem with ``_`` written as ``-`` (``lif_memory.py`` -> ``lif-memory``).  Shared helpers
live in ``common.py``.  See docs/benchmarks.md.
"""
