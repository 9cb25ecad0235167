"""`neuroadapt continual`: task sequences, ACC/BWT, the run directory, bad recipes."""
import json

import numpy as np
import pytest
import yaml

from neuroadapt.errors import ConfigError
from neuroadapt.engine.continual_tasks import acc_bwt

RECIPE = {
    "name": "tiny_continual", "task": "continual",
    "dataset": {"name": "digits", "n_steps": 4, "max_train": 300, "max_test": 100},
    "model": {"type": "spiking_classifier", "hidden": [24]},
    "training": {"epochs": 1, "batch_size": 32, "optimizer": "sgd", "lr": 0.005, "momentum": 0.9,
                 "threads": 1, "progress": False},
    "continual": {"sequence": "permuted", "n_tasks": 2, "eval_split": "val"},
    "hlop": {"initial": {"layers.0.fc": 8, "readout.fc": 4}, "increment": 4},
    "ewc": {"lambda": 10, "samples": 10},
}


def _write(tmp_path, recipe):
    p = tmp_path / "r.yaml"
    p.write_text(yaml.safe_dump(recipe))
    return p


def test_acc_bwt_definitions():
    a = [[0.9, 0.1, 0.0], [0.8, 0.95, 0.1], [0.6, 0.9, 0.99]]
    acc, bwt = acc_bwt(a)
    assert acc == pytest.approx((0.6 + 0.9 + 0.99) / 3)
    assert bwt == pytest.approx(((0.6 - 0.9) + (0.9 - 0.95)) / 2)


def test_cli_continual_writes_run(tmp_path, capsys):
    from neuroadapt.cli import main

    out = tmp_path / "run"
    assert main(["continual", str(_write(tmp_path, RECIPE)), "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    for key in ("task", "dataset", "model", "acc", "bwt"):
        assert key in m
    assert set(m["acc"]) == {"finetune", "ewc", "hlop", "multitask"}
    for name in ("finetune", "ewc", "hlop"):
        acc, bwt = acc_bwt(m["methods"][name]["matrix"])
        assert m["acc"][name] == pytest.approx(acc) and m["bwt"][name] == pytest.approx(bwt)
    assert m["bwt"]["multitask"] is None
    assert m["methods"]["hlop"]["subspace"] == {"layers.0.fc": 12, "readout.fc": 8}
    assert (out / "plots" / "accuracy_matrix.png").is_file() and (out / "plots" / "task_accuracy.png").is_file()
    assert "hlop" in capsys.readouterr().out


def test_split_sequence_heads(tmp_path):
    from neuroadapt.data.digits import DigitsSpikes
    from neuroadapt.engine.continual_tasks import TaskSequence

    seq = TaskSequence(DigitsSpikes(n_steps=2), "split", 5, classes_per_task=2)
    for t in range(5):
        _, y = seq.batch("test", t, np.arange(seq.num_samples("test", t)))
        assert set(y.tolist()) == {2 * t, 2 * t + 1}
        assert np.isfinite(seq.mask(t).numpy()).sum() == 2
    with pytest.raises(ConfigError, match="exceed"):
        TaskSequence(DigitsSpikes(n_steps=2), "split", 6, classes_per_task=2)


@pytest.mark.parametrize("change, match", [
    ({"training": {**RECIPE["training"], "optimizer": "adam"}}, "HLOP needs training.optimizer: sgd"),
    ({"continual": {"methods": ["hlop", "lwf"]}}, "unknown"),
    ({"hlop": {"initial": 500}}, "exceed the layer's input dimension"),
    ({"hlop": {"initial": {"layers.9.fc": 3}}}, "no protected layer"),
    ({"task": "classification"}, "needs task: continual"),
])
def test_bad_recipes(tmp_path, change, match):
    from neuroadapt.engine.continual import load_continual_recipe, run_continual

    with pytest.raises(ConfigError, match=match):
        r = load_continual_recipe(_write(tmp_path, {**RECIPE, **change}))
        run_continual(r, tmp_path / "out", methods=["hlop"], echo=False)
    assert not (tmp_path / "out").exists()
