#!/usr/bin/env python3
"""Create (or check) the cached Python 3.10 side environment with Lava and lava-dl.

Lava (``lava-nc`` 0.10.0) and ``lava-dl`` 0.6.0 support only Python 3.10 and pin torch 2.3,
so they cannot live in neuroadapt's own (Python 3.11) environment.  This script builds a
separate virtual environment *outside* the repository; neuroadapt talks to it only through
files (a netx HDF5 network, input spikes as ``.npy``) and a subprocess running
``hardware/lava_runner.py`` under the side environment's interpreter.

Usage (any Python 3 runs this script; it finds a 3.10 interpreter itself)::

    python hardware/lava_env.py                 # create it (several minutes; ~3 GB: torch 2.3)
    python hardware/lava_env.py --check         # exit 0 if it exists and imports Lava
    python hardware/lava_env.py --print-python  # path of the side environment's interpreter

Locations (environment variables win over the defaults):

* ``NEUROADAPT_LAVA_VENV``: the environment (default ``~/.cache/neuroadapt/lava-venv``);
* ``NEUROADAPT_PYTHON310``: the Python 3.10 interpreter to build it with (default: ``python3.10``
  on PATH, then ``~/.pyenv/versions/3.10.*/bin/python``).

The environment is built in ``<venv>.partial`` and renamed only after Lava imports and a
one-neuron network runs, so an interrupted build never leaves a half-working cache behind.
"""
from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

LAVA_PACKAGES = ["lava-nc==0.10.0", "lava-dl==0.6.0"]
DEFAULT_VENV = "~/.cache/neuroadapt/lava-venv"
SMOKE = (
    "import numpy as np\n"
    "from lava.proc.lif.process import LIF\n"
    "from lava.proc.io.source import RingBuffer\n"
    "from lava.proc.dense.process import Dense\n"
    "from lava.magma.core.run_conditions import RunSteps\n"
    "from lava.magma.core.run_configs import Loihi2SimCfg\n"
    "import lava.lib.dl.netx as netx\n"
    "src = RingBuffer(data=np.ones((1, 4), dtype=np.int32))\n"
    "d = Dense(weights=np.array([[200]]), num_message_bits=0)\n"
    "lif = LIF(shape=(1,), du=4095, dv=0, vth=100)\n"
    "src.s_out.connect(d.s_in); d.a_out.connect(lif.a_in)\n"
    "lif.run(condition=RunSteps(num_steps=4), run_cfg=Loihi2SimCfg(select_tag='fixed_pt'))\n"
    "lif.stop()\n"
    "print('lava ok')\n"
)


def venv_dir() -> Path:
    return Path(os.environ.get("NEUROADAPT_LAVA_VENV") or DEFAULT_VENV).expanduser()


def venv_python(venv: Path | None = None) -> Path:
    return (venv or venv_dir()) / "bin" / "python"


def _is_310(python: str) -> bool:
    try:
        res = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return res.returncode == 0 and res.stdout.strip() == "3.10"


def find_python310() -> str | None:
    """``$NEUROADAPT_PYTHON310``, else the first working 3.10 among ``python3.10`` on PATH and
    pyenv's versions (a pyenv shim on PATH may exist without 3.10 being selected)."""
    env = os.environ.get("NEUROADAPT_PYTHON310")
    if env:
        return env
    candidates = [shutil.which("python3.10")]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.10.*/bin/python")), reverse=True)
    for cand in candidates:
        if cand and _is_310(cand):
            return cand
    return None


def check(venv: Path) -> bool:
    py = venv_python(venv)
    if not py.exists():
        return False
    try:
        res = subprocess.run([str(py), "-c", SMOKE], capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return False
    return res.returncode == 0 and "lava ok" in res.stdout


def create(venv: Path, python: str) -> None:
    if not _is_310(python):
        sys.exit(f"error: {python} is not a Python 3.10 interpreter (Lava needs 3.10); "
                 "set NEUROADAPT_PYTHON310 to one")
    partial = venv.with_name(venv.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.parent.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run([python, "-m", "venv", str(partial)], check=True)
        pip = [str(partial / "bin" / "python"), "-m", "pip", "install", "--no-input"]
        subprocess.run(pip + ["--upgrade", "pip"], check=True)
        subprocess.run(pip + LAVA_PACKAGES, check=True)
        res = subprocess.run([str(partial / "bin" / "python"), "-c", SMOKE], capture_output=True, text=True)
        if res.returncode != 0:
            sys.exit(f"error: Lava was installed but its smoke test failed:\n{res.stderr[-3000:]}")
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    # venv scripts embed their folder; the interpreter itself works after a rename (bin/python
    # finds pyvenv.cfg next to it), which is all neuroadapt uses.
    if venv.exists():
        shutil.rmtree(venv)
    os.replace(partial, venv)
    if not check(venv):
        sys.exit(f"error: {venv} was created but does not run Lava; remove it and try again")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--venv", default=None, help=f"where to build it (default $NEUROADAPT_LAVA_VENV or {DEFAULT_VENV})")
    ap.add_argument("--python", default=None, help="Python 3.10 interpreter to build it with")
    ap.add_argument("--check", action="store_true", help="only check that it exists and runs Lava")
    ap.add_argument("--print-python", action="store_true", help="print the side interpreter's path")
    ap.add_argument("--force", action="store_true", help="rebuild even if it exists")
    args = ap.parse_args(argv)
    venv = Path(args.venv).expanduser() if args.venv else venv_dir()
    if args.print_python:
        print(venv_python(venv))
        return 0
    if args.check:
        ok = check(venv)
        print(f"{venv}: {'ok' if ok else 'missing or broken'}")
        return 0 if ok else 1
    if check(venv) and not args.force:
        print(f"{venv}: already there and runs Lava (use --force to rebuild)")
        return 0
    python = args.python or find_python310()
    if python is None:
        sys.exit("error: no Python 3.10 interpreter found; install one (e.g. pyenv install 3.10) and "
                 "set NEUROADAPT_PYTHON310 to its path")
    create(venv, python)
    print(f"{venv}: ready ({venv_python(venv)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
