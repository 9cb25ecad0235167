"""The quickstart job end to end (slow: trains the real recipe, ~15 s on one core)."""
import json

import pytest

from neuroadapt.cli import main


@pytest.mark.slow
def test_quickstart_reaches_90_percent(tmp_path, capsys):
    out = tmp_path / "qs"
    assert main(["quickstart", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "quickstart: test accuracy" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "classification" and metrics["dataset"] == "digits"
    assert metrics["model"] == "quickstart_digits"
    assert metrics["test_accuracy"] >= 0.90
    assert metrics["train_time_s"] < 120
    assert {p.name for p in (out / "plots").iterdir()} == {"loss.png", "accuracy.png", "spike_raster.png",
                                                           "membrane.png"}
    # a second quickstart replaces the first one, and eval reproduces the recorded accuracy exactly
    assert main(["quickstart", "--out", str(out)]) == 0
    assert main(["eval", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["test_accuracy"] == result["recorded_test_accuracy"] == metrics["test_accuracy"]
