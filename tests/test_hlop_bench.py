"""`neuroadapt bench hlop --quick`: the bench contract for the MLP and the conv case."""
import json

import pytest

from neuroadapt.engine import bench
from neuroadapt.errors import UnsupportedOptionError


@pytest.mark.parametrize("model, proj", [("mlp", "weight"), ("conv", "input")])
def test_hlop_bench_quick(capfd, model, proj):
    rc = bench.main("hlop", as_json=True, quick=True, overrides={"model": model, "proj_type": proj, "repeats": 2})
    result = json.loads(capfd.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and result["bench"] == "hlop"
    assert set(result["results_ms"]) == {"plain", "hlop"} and result["ratios"]["hlop_over_plain"] > 0
    sizes = result["config"]["subspace"]
    assert all(s["old"] > 0 and s["total"] > s["old"] for s in sizes.values())


def test_hlop_bench_rejects_unknown_model():
    with pytest.raises(UnsupportedOptionError, match="mlp or conv"):
        bench.run_benchmark("hlop", quick=True, overrides={"model": "resnet"})


def test_hlop_breakdown_script_runs_and_is_not_a_bench():
    import importlib.util
    from pathlib import Path

    path = Path(bench.benchmarks_dir()) / "_hlop_breakdown.py"
    spec = importlib.util.spec_from_file_location("_hlop_breakdown", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = mod.main(["quick=1", "steps=1"])
    assert set(out["median"]) == {"plain", "fwd_bwd", "hebbian", "projection", "sgd", "hlop"}
    assert out["fastest"]["hebbian"] > 0 and out["fastest"]["projection"] > 0
    assert "hlop" in bench.list_benchmarks()
    assert not any("breakdown" in name for name in bench.list_benchmarks())
