"""`dataset: {name: shd}` trains from a local SHD-format folder through the CLI (--data-root)."""

import json

import numpy as np
import pytest

from neuroadapt.cli import main
from neuroadapt.data.shd import write_shd


def _folder(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "shd"
    for split, n in (("train", 48), ("test", 24)):
        labels = rng.integers(0, 20, n)
        # class-dependent channels so there is something to learn
        units = [np.sort(rng.integers(30 * (y % 20), 30 * (y % 20) + 30, 150)) for y in labels]
        times = [np.sort(rng.uniform(0, 0.9, 150)) for _ in range(n)]
        write_shd(root / f"shd_{split}.h5", times, units, labels, speakers=rng.integers(0, 4, n))
    return root


def test_train_on_local_shd_folder(tmp_path, capsys):
    root = _folder(tmp_path)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("""
task: classification
dataset: {name: shd, dt: 0.05, duration: 1.0}
model: {hidden: [16], recurrent: true}
training: {epochs: 1, batch_size: 16, plots: false, progress: false, threads: 1}
""")
    out = tmp_path / "run"
    assert main(["train", str(recipe), "--data-root", str(root), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "shd" and 0.0 <= metrics["test_accuracy"] <= 1.0


def test_shd_without_data_root_is_a_one_line_error(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: classification\ndataset: {name: shd}\n")
    out = tmp_path / "run"
    assert main(["train", str(recipe), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "--data-root" in err[0]
    assert not out.exists()
