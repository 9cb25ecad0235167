"""The event modules split for length keep their public names where they were.

``events.py`` -> ``event_conversions.py`` (dense <-> events, seconds <-> ticks) and ``convert.py`` ->
``event_files.py`` (per-format readers / writers, ``EventSet``): every name of the old modules'
``__all__`` is still importable from them and is the very object the new module defines, and each
module imports cleanly first in a fresh interpreter (no import cycle).
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

import neuroadapt
import neuroadapt.data.convert as convert
import neuroadapt.data.event_conversions as event_conversions
import neuroadapt.data.event_files as event_files
import neuroadapt.data.events as events

EVENTS_ALL = ["SHD_N_CHANNELS", "DEFAULT_DT", "DEFAULT_DURATION", "check_events", "n_bins_for", "bin_edges",
              "bin_spikes", "bin_batch", "seconds_to_ticks", "ticks_to_seconds", "dense_to_events",
              "events_to_dense", "events_to_dense_batch"]
CONVERT_ALL = ["TONIC_DTYPE", "to_tonic", "from_tonic", "dense_to_tonic", "tonic_to_dense", "FORMATS", "EventSet",
               "detect_format", "format_for_output", "read_events", "write_events", "convert_file"]


def test_old_public_names_are_still_there():
    assert events.__all__ == EVENTS_ALL and convert.__all__ == CONVERT_ALL     # the lists before the split
    for name in EVENTS_ALL:
        assert hasattr(events, name), name
    for name in CONVERT_ALL:
        assert hasattr(convert, name), name
    for name in event_conversions.__all__:
        assert getattr(events, name) is getattr(event_conversions, name)
    assert convert.EventSet is event_files.EventSet


@pytest.mark.parametrize("first", ["event_conversions", "events", "event_files", "convert", "tonic_events"])
def test_each_module_imports_first(first):
    code = (f"import neuroadapt.data.{first}\n"
            "from neuroadapt.data.events import dense_to_events, ticks_to_seconds, bin_spikes\n"
            "from neuroadapt.data.convert import EventSet, read_events, to_tonic\n"
            "import numpy as np\n"
            "t, u = dense_to_events(np.eye(3, dtype=np.uint8), 0.001)\n"
            "assert t.tolist() == [0.0, 0.001, 0.002] and u.tolist() == [0, 1, 2]\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(neuroadapt.__file__)))    # the package under test
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
