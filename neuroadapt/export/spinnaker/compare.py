"""Spike coincidence: how many spikes of two runs pair up one-to-one within a tolerance.

For one neuron of one sample with reference spike times ``R`` and test times ``S`` (ms), a matching
pairs spikes ``r in R`` and ``s in S`` with ``|r - s| <= tol``, each spike used at most once; on sorted
1-d times the greedy sweep below finds a maximum matching. Summed over neurons and samples:

* ``matched``: pairs; ``recall = matched / n_ref``; ``precision = matched / n_test``;
* ``coincidence = 2 matched / (n_ref + n_test)`` (symmetric, 1.0 when both are silent).
"""
from __future__ import annotations

import numpy as np

__all__ = ["match_count", "coincidence", "raster_times"]


def match_count(ref, test, tol: float) -> int:
    """Size of a maximum one-to-one matching of sorted times ``ref`` and ``test`` within ``tol``."""
    i = j = m = 0
    while i < len(ref) and j < len(test):
        d = test[j] - ref[i]
        if abs(d) <= tol + 1e-9:
            m, i, j = m + 1, i + 1, j + 1
        elif d < 0:
            j += 1
        else:
            i += 1
    return m


def raster_times(raster: np.ndarray, h_ms: float, shift: int = 0) -> dict:
    """``{(sample, neuron): sorted times in ms}`` of a (T, B, N) 0/1 raster, step ``k`` -> ``(k - shift) h``."""
    t, b, n = np.nonzero(np.asarray(raster))
    out: dict = {}
    for tt, bb, nn in zip(t, b, n):
        out.setdefault((int(bb), int(nn)), []).append((int(tt) - shift) * h_ms)
    return out


def coincidence(ref: dict, test: dict, tol: float = 1.0) -> dict:
    """Compare two ``{(sample, neuron): times}`` maps (see module docstring)."""
    n_ref = sum(len(v) for v in ref.values())
    n_test = sum(len(v) for v in test.values())
    matched = sum(match_count(sorted(ref.get(k, [])), sorted(test.get(k, [])), tol) for k in set(ref) | set(test))
    total = n_ref + n_test
    return {"n_ref": n_ref, "n_test": n_test, "matched": matched,
            "coincidence": 1.0 if total == 0 else 2 * matched / total,
            "recall": 1.0 if n_ref == 0 else matched / n_ref,
            "precision": 1.0 if n_test == 0 else matched / n_test, "tol_ms": tol}
