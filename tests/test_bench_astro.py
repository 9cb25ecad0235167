"""``neuroadapt bench astro`` / ``astro-memory`` in quick mode: the bench JSON contract."""
from __future__ import annotations

import json

import pytest

from neuroadapt.engine import bench


def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_astro_quick_run(capfd):
    rc = bench.main("astro", as_json=True, quick=True)
    res = _last_json(capfd.readouterr().out)
    assert rc == 0 and res["bench"] == "astro"
    assert set(res["results_ms"]) == {"neuroadapt", "lif", "lstm"} and min(res["results_ms"].values()) > 0
    assert set(res["ratios"]) == {"lif_over_neuroadapt", "lstm_over_neuroadapt"}
    cfg = res["config"]
    assert set(cfg["latency_ms_per_step"]) == {"neuroadapt", "lif", "lstm"}
    n = cfg["n_params"]
    assert abs(n["lstm"] - n["neuroadapt"]) / n["neuroadapt"] < 0.1      # parameter-matched LSTM


@pytest.mark.slow   # the profiler-based memory measure takes ~20 s even in quick mode
def test_astro_memory_quick_run(capfd):
    rc = bench.main("astro-memory", as_json=True, quick=True)
    res = _last_json(capfd.readouterr().out)
    assert rc == 0 and res["bench"] == "astro-memory"
    assert all(v > 0 for v in res["results_mb"].values()) and "neuroadapt" in res["results_mb"]
