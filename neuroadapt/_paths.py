"""Where the repository's top-level folders (models/, benchmarks/, sims/, hardware/) are found.

The documented install is editable (``pip install -e .``), so these folders sit next to the
package.  Each can be pointed elsewhere with an environment variable.
"""

from __future__ import annotations

import os
from pathlib import Path

_ENV = {"models": "NEUROADAPT_MODELS", "benchmarks": "NEUROADAPT_BENCHMARKS", "sims": "NEUROADAPT_SIMS",
        "hardware": "NEUROADAPT_HARDWARE"}


def project_folder(name: str) -> Path:
    """``$NEUROADAPT_<NAME>`` if set, else ``<repo>/<name>`` next to the ``neuroadapt`` package."""
    env = os.environ.get(_ENV[name])
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / name
