"""Training engine: recipes, the train/eval loop, run directories, checkpoints, plots, DDP.

Importing this package is cheap (no torch); the entry points load their modules on first use::

    from neuroadapt.engine import train, evaluate_run, quickstart, load_recipe
    metrics = train("models/quickstart_digits.yaml", out="runs/qs", seed=0)

Modules: ``config`` (recipes), ``models`` (model from a recipe), ``trainer`` (the loop),
``run`` (train / eval / quickstart), ``checkpoint``, ``rundir`` (atomic writes, run
directories), ``plots``, ``distributed`` (torchrun / DDP); ``bench`` runs benchmarks.
"""
from __future__ import annotations

import importlib

__all__ = ["train", "evaluate_run", "quickstart", "load_recipe", "build_model", "build_dataset"]

_LAZY = {
    "train": "neuroadapt.engine.run",
    "evaluate_run": "neuroadapt.engine.run",
    "quickstart": "neuroadapt.engine.run",
    "build_dataset": "neuroadapt.engine.run",
    "load_recipe": "neuroadapt.engine.config",
    "build_model": "neuroadapt.engine.models",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'neuroadapt.engine' has no attribute {name!r}")
