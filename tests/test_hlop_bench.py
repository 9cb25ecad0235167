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
