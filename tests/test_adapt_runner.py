"""`neuroadapt adapt`: recipe checks, stream batching, an end-to-end run on a tiny digits-C."""
import json

import pytest
import torch
import yaml

from neuroadapt.cli import main
from neuroadapt.engine.adapt import _batches, load_adapt_recipe
from neuroadapt.errors import ConfigError

TINY = {
    "name": "tiny",
    "dataset": {"name": "digits-c", "resolution": 16, "severity": 5, "corruptions": ["gaussian_noise", "contrast"],
                "test_fraction": 0.1, "val_fraction": 0.1},
    "model": {"type": "cnn", "width": 4},
    "source": {"epochs": 2, "batch_size": 64, "lr": 3e-3},
    "adapt": {"settings": ["continual", "reset"], "batch_size": 32, "fisher_samples": 64,
              "methods": {"source": {}, "bn": {}, "tent": {}, "eata": {}, "nhl": {"hebb_lr": 0.001}}},
    "seeds": [0],
}


def _write(tmp_path, recipe):
    p = tmp_path / "r.yaml"
    p.write_text(yaml.safe_dump(recipe))
    return p


def test_batches_merge_a_last_single_sample():
    sizes = [len(b) for b in _batches(65, 32, torch.Generator().manual_seed(0))]
    assert sizes == [32, 33] and sum(sizes) == 65
    allidx = torch.cat(_batches(10, 4, torch.Generator().manual_seed(0)))
    assert sorted(allidx.tolist()) == list(range(10))


def test_recipe_errors(tmp_path):
    bad = dict(TINY, adapt=dict(TINY["adapt"], batch_size=1))
    with pytest.raises(ConfigError, match="batch_size must be >= 2"):
        load_adapt_recipe(_write(tmp_path, bad))
    with pytest.raises(ConfigError, match="unknown key"):
        load_adapt_recipe(_write(tmp_path, dict(TINY, oops=1)))
    with pytest.raises(ConfigError, match="settings"):
        load_adapt_recipe(_write(tmp_path, dict(TINY, adapt=dict(TINY["adapt"], settings=["gradual"]))))
    for name in ("digits_c_cnn", "digits_c_snn", "cifar10_c_cnn"):
        assert load_adapt_recipe(name)["dataset"]["severity"] == 5


def test_cli_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["adapt", str(_write(tmp_path, TINY)), "--out", str(out), "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "| nhl |" in text and "continual" in text and "reset" in text
    m = json.loads((out / "metrics.json").read_text())
    assert (m["task"], m["dataset"], m["model"]) == ("test_time_adaptation", "digits-c", "cnn")
    for setting in ("continual", "reset"):
        for meth in ("source", "bn", "tent", "eata", "nhl"):
            errs = m["error"][setting][meth]
            assert set(errs) == {"gaussian_noise", "contrast"}
            assert all(0 <= v <= 100 for v in errs.values())
    # the source method never adapts: both settings give the same errors
    assert m["error"]["continual"]["source"] == m["error"]["reset"]["source"]
    assert (out / "plots" / "errors.png").stat().st_size > 1000
    assert (out / "source_seed0.pt").is_file() and (out / "table.md").is_file()
    # reloading the source model reproduces the run's numbers exactly
    out2 = tmp_path / "run2"
    assert main(["adapt", str(_write(tmp_path, TINY)), "--out", str(out2), "--no-progress",
                 "--source-from", str(out), "--methods", "source", "tent", "--settings", "continual"]) == 0
    m2 = json.loads((out2 / "metrics.json").read_text())
    assert m2["error"]["continual"]["tent"] == m["error"]["continual"]["tent"]


def test_cli_errors(tmp_path, capsys):
    assert main(["adapt", str(_write(tmp_path, TINY)), "--out", str(tmp_path / "x"), "--methods", "cotta"]) == 2
    assert "unknown method 'cotta'" in capsys.readouterr().err
    assert main(["adapt", str(_write(tmp_path, TINY)), "--out", str(tmp_path / "y"),
                 "--source-from", str(tmp_path / "nowhere")]) == 2
    assert "source_seed0.pt" in capsys.readouterr().err
    assert not (tmp_path / "y").exists() and not (tmp_path / "y.partial").exists()


def test_cifar10_c_path_on_small_files(tmp_path, monkeypatch):
    """The CIFAR-10-C recipe's data path, on tiny files in the real layouts (torchvision md5 bypassed)."""
    import pickle

    import numpy as np
    import torchvision.datasets.cifar as tvc

    from neuroadapt.data.images import CIFAR10_FILES, make_corrupted_set
    from neuroadapt.engine.adapt import run_adapt

    folder = tmp_path / "cifar" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in CIFAR10_FILES[:-1]:
        with open(folder / name, "wb") as f:
            pickle.dump({"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8),
                         "labels": [i % 10 for i in range(20)]}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f)
    monkeypatch.setattr(tvc.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(tvc, "check_integrity", lambda *a, **k: True)
    test_x = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    make_corrupted_set(test_x, np.arange(20) % 10, tmp_path / "c10c", severities=5,
                       corruptions=["brightness", "contrast"])
    recipe = load_adapt_recipe("cifar10_c_cnn")
    recipe["dataset"].update(source_root=str(tmp_path / "cifar"), root=str(tmp_path / "c10c"), val_size=20,
                             corruptions=["brightness", "contrast"])
    recipe["model"]["width"] = 4
    recipe["source"].update(epochs=1, batch_size=32)
    recipe["adapt"].update(batch_size=8, fisher_samples=16)
    recipe.update(seeds=[0], device="cpu", threads=1)
    m = run_adapt(recipe, tmp_path / "run", methods=["source", "eata", "nhl"], settings=["continual"],
                  progress=False, echo=False)
    assert m["dataset"] == "cifar10-c" and set(m["error"]["continual"]["nhl"]) == {"brightness", "contrast"}
    recipe["dataset"].pop("source_root")
    with pytest.raises(ConfigError, match="source_root"):
        run_adapt(recipe, tmp_path / "run2", progress=False, echo=False)
