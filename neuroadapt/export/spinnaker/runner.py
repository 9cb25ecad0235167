"""Run an exported PyNN script on NEST in a subprocess and read the spikes back.

The script is run exactly as a user would run it (``python run_pynn.py --inputs ... --out ...``) with
the current interpreter; nothing of neuroadapt is imported there. PyNN and NEST (``pip install pynn
nest-simulator``) must be importable, else :class:`~neuroadapt.errors.ReferenceUnavailableError`.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from neuroadapt.errors import InvalidInputError, ReferenceUnavailableError
from neuroadapt.export.spinnaker.script import SCRIPT_NAME

__all__ = ["nest_available", "run_pynn"]


def nest_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("pyNN", "nest"))


def run_pynn(export_dir, spikes: np.ndarray, *, simulator: str = "nest", chunk: int = 32,
             timeout: float = 3600.0) -> dict:
    """Run ``export_dir/run_pynn.py`` on ``spikes`` (T, B, n_in) and return its result arrays."""
    if not nest_available():
        raise ReferenceUnavailableError("PyNN and NEST are needed to verify a SpiNNaker export: "
                                        "pip install pynn nest-simulator")
    spikes = np.asarray(spikes)
    if spikes.ndim != 3:
        raise InvalidInputError(f"input spikes must be (T, B, n_inputs), got shape {spikes.shape}")
    if spikes.size and (not np.all(np.isfinite(spikes)) or np.any(spikes < 0) or np.any(spikes > 255)
                        or np.any(spikes != np.round(spikes))):
        raise InvalidInputError("input spikes must be whole spike counts in 0..255 per channel and step")
    export_dir = Path(export_dir)
    with tempfile.TemporaryDirectory(prefix="neuroadapt-pynn-") as tmp:
        inp, out = Path(tmp) / "inputs.npz", Path(tmp) / "result.npz"
        np.savez(inp, spikes=spikes.astype(np.uint8))
        env = dict(os.environ, OMP_NUM_THREADS="1")
        proc = subprocess.run([sys.executable, str(export_dir / SCRIPT_NAME), "--inputs", str(inp), "--out", str(out),
                               "--simulator", simulator, "--chunk", str(int(chunk))],
                              capture_output=True, text=True, timeout=timeout, cwd=tmp, env=env)
        if proc.returncode != 0 or not out.exists():
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
            raise ReferenceUnavailableError(f"the PyNN script failed on {simulator} (exit {proc.returncode}):\n{tail}")
        with np.load(out) as z:
            return {k: z[k] for k in z.files}
