"""Shared set-up of train and eval: data set from a recipe, process-wide runtime settings,
the pre-flight check that catches bad input before anything is written."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from neuroadapt.engine import trainer as tr
from neuroadapt.engine.models import build_model
from neuroadapt.errors import CheckpointError

__all__ = ["build_dataset", "apply_runtime", "preflight", "read_metrics", "CHECKPOINT"]

CHECKPOINT = "checkpoint.pt"


def build_dataset(recipe: dict):
    from neuroadapt.data import get_dataset_class

    opts = dict(recipe["dataset"])
    name, root = opts.pop("name"), opts.pop("root")
    return get_dataset_class(name)(root=root, **opts)


def apply_runtime(cfg: dict, device: torch.device):
    """Thread count and deterministic algorithms for this run; returns a function that restores
    the previous process-wide settings (so the Python API leaves no global side effect)."""
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    det_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    if cfg["threads"] is not None:
        torch.set_num_threads(int(cfg["threads"]))
    if cfg["deterministic"]:
        if device.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)

    def restore():
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det, warn_only=det_warn)

    return restore


def preflight(recipe: dict, device: torch.device):
    """Data set, model and one forward pass: raises on any bad input before a file is written."""
    dataset = build_dataset(recipe)
    model = build_model(recipe["model"], dataset.n_inputs, dataset.n_classes).to(device)
    n_test = dataset.num_samples("test")
    idx = torch.arange(min(2, n_test))
    x, _ = dataset.batch("test", idx, tr.generator(recipe["training"]["seed"], tr.EVAL, 0))
    tr.check_finite(x, "first test batch")
    with torch.no_grad():
        model(x.to(device))
    return dataset, model


def read_metrics(out: Path) -> dict:
    try:
        return json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise CheckpointError(f"{out}: metrics.json is missing or unreadable") from None
