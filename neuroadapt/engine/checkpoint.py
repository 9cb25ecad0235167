"""Checkpoints: model + optimizer state, position in training and every RNG state.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, saved with
``torch.save`` through an atomic write, so it loads with ``torch.load(path, weights_only=True)``
(nothing in it can run code on load)::

    {"format": "neuroadapt-checkpoint", "version": 1,
     "model": state_dict, "optimizer": state_dict,
     "epoch": e, "batch": k,        # k batches of epoch e (0-based) are done; k == 0: epoch start
     "global_step": n, "epoch_stats": {...}, "history": [...], "train_time_s": t,
     "seed": s, "world_size": w, "config": "<resolved recipe as YAML>",
     "rng": {"python": [...], "numpy": {...}, "torch": ByteTensor, "cuda": [ByteTensor, ...]}}
"""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from neuroadapt.engine.rundir import atomic_write
from neuroadapt.errors import CheckpointError

__all__ = ["save_checkpoint", "load_checkpoint", "rng_state", "set_rng_state", "seed_everything", "FORMAT"]

FORMAT = "neuroadapt-checkpoint"
VERSION = 1


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global RNG and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Every global RNG state as weights-only-loadable values."""
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    state = {
        "python": [version, list(internal), gauss],
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    npst = state["numpy"]
    np.random.set_state({
        "bit_generator": npst["bit_generator"],
        "state": {"key": npst["key"].numpy().astype(np.uint32), "pos": npst["pos"]},
        "has_gauss": npst["has_gauss"],
        "gauss": npst["gauss"],
    })
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, *, model, optimizer, epoch: int, batch: int, global_step: int,
                    epoch_stats: dict, history: list, train_time_s: float, seed: int, world_size: int,
                    config_text: str) -> Path:
    """Atomically write a checkpoint (see the module docstring)."""
    state = {
        "format": FORMAT,
        "version": VERSION,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "epoch": int(epoch),
        "batch": int(batch),
        "global_step": int(global_step),
        "epoch_stats": dict(epoch_stats),
        "history": list(history),
        "train_time_s": float(train_time_s),
        "seed": int(seed),
        "world_size": int(world_size),
        "config": config_text,
        "rng": rng_state(),
    }
    return atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; :class:`CheckpointError` if missing or not ours."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot be loaded as a weights-only checkpoint "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a neuroadapt checkpoint (missing format tag {FORMAT!r})")
    if state.get("version", 0) > VERSION:
        raise CheckpointError(f"{path}: checkpoint version {state['version']} is newer than this neuroadapt "
                              f"understands ({VERSION}); upgrade neuroadapt")
    return state
