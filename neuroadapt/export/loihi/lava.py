"""Glue to Lava's bit-accurate CPU simulation, which lives in a separate Python 3.10 environment.

Lava (``lava-nc`` 0.10, ``lava-dl`` 0.6) supports only Python 3.10, so neuroadapt never imports
it: ``hardware/lava_env.py`` builds a cached virtual environment outside the repository
(``$NEUROADAPT_LAVA_VENV``, default ``~/.cache/neuroadapt/lava-venv``) and :func:`run_lava`
talks to it through files: the netx HDF5 network and the input spikes (``.npy``) go in,
``hardware/lava_runner.py`` runs under the side environment's interpreter, per-layer spikes,
the last layer's voltage and the timings come back.  A missing environment raises
:class:`~neuroadapt.errors.ReferenceUnavailableError` with the command that creates it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from neuroadapt.errors import ReferenceUnavailableError
from neuroadapt.export.loihi.emulator import input_message_bits

__all__ = ["venv_dir", "lava_python", "runner_script", "create_command", "available", "require", "run_lava"]

DEFAULT_VENV = "~/.cache/neuroadapt/lava-venv"


def venv_dir() -> Path:
    return Path(os.environ.get("NEUROADAPT_LAVA_VENV") or DEFAULT_VENV).expanduser()


def lava_python() -> Path:
    return venv_dir() / "bin" / "python"


def hardware_dir() -> Path:
    from neuroadapt._paths import project_folder

    return project_folder("hardware")


def runner_script() -> Path:
    return hardware_dir() / "lava_runner.py"


def create_command() -> str:
    return f"{Path(sys.executable).name} {hardware_dir() / 'lava_env.py'}"


def available() -> bool:
    """Whether the side environment and the runner script are in place (does not start Lava)."""
    return lava_python().exists() and runner_script().is_file()


def require() -> Path:
    """The side interpreter, or :class:`ReferenceUnavailableError` saying how to create it."""
    if not runner_script().is_file():
        raise ReferenceUnavailableError(
            f"the Lava runner {runner_script()} is missing: Loihi verification needs a neuroadapt checkout "
            "(hardware/ next to the package) or $NEUROADAPT_HARDWARE pointing at its hardware/ folder")
    py = lava_python()
    if not py.exists():
        raise ReferenceUnavailableError(
            f"Lava's side environment is missing ({venv_dir()}): create it (Python 3.10, several minutes, "
            f"~3 GB) with `{create_command()}` or point $NEUROADAPT_LAVA_VENV at one")
    return py


def run_lava(net_path, spikes, steps: int, timeout: float | None = None) -> dict:
    """Run the netx file ``net_path`` in Lava on input spikes ``(T, B, n_inputs)`` (0/1, or spike
    counts sent as graded spikes), ``steps`` steps per sample.  Returns ``{"spikes": [per layer
    (steps, B, n) bool], "v_last": (steps, B, n) int64, "timing": {...}}``."""
    py = require()
    x = np.asarray(spikes)
    if x.ndim != 3:
        raise ValueError(f"run_lava expects (T, B, n_inputs) spikes, got shape {x.shape}")
    with tempfile.TemporaryDirectory(prefix="neuroadapt-lava-") as tmp:
        inp = os.path.join(tmp, "inputs.npy")
        out = os.path.join(tmp, "out")
        bits = input_message_bits(x)
        np.save(inp, x.astype(np.int32))
        cmd = [str(py), str(runner_script()), "--net", os.fspath(net_path), "--inputs", inp,
               "--steps", str(int(steps)), "--out", out, "--input-message-bits", str(bits)]
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)  # the side environment must not see neuroadapt's packages
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            raise ReferenceUnavailableError(f"Lava did not finish within {timeout:.0f} s "
                                            f"({x.shape[1]} samples x {steps} steps)") from None
        if res.returncode != 0:
            tail = (res.stderr or res.stdout).strip().splitlines()[-15:]
            raise ReferenceUnavailableError("Lava's run failed (exit %d):\n%s\nIf the side environment is broken, "
                                            "rebuild it with `%s --force`" % (res.returncode, "\n".join(tail),
                                                                               create_command()))
        n = len([f for f in os.listdir(out) if f.startswith("spikes_")])
        layers = [np.load(os.path.join(out, f"spikes_{i}.npy")).astype(bool) for i in range(n)]
        v_last = np.load(os.path.join(out, "v_last.npy"))
        with open(os.path.join(out, "timing.json")) as fh:
            timing = json.load(fh)
    return {"spikes": layers, "v_last": v_last, "timing": timing}
