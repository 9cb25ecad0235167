"""Engine units: recipes, models, checkpoints, atomic writes, run directories, seeds."""
import json
import os
from pathlib import Path

import pytest
import torch
import yaml

from neuroadapt.engine import checkpoint as ck
from neuroadapt.engine import rundir as rd
from neuroadapt.engine.config import find_recipe, load_recipe, models_dir, resolve_recipe
from neuroadapt.engine.models import SpikingClassifier, build_model
from neuroadapt.engine.run import evaluate_run, train
from neuroadapt.engine.trainer import check_finite, seed_for
from neuroadapt.errors import CheckpointError, ConfigError, InvalidInputError, ShapeError, UnsupportedOptionError

TINY = {
    "name": "tiny",
    "dataset": {"name": "digits", "n_steps": 6, "max_train": 48, "max_test": 24},
    "model": {"hidden": [10], "recurrent": True},
    "training": {"epochs": 2, "batch_size": 16, "eval_batch_size": 24, "threads": 1, "plots": False,
                 "progress": False},
}


def _write(tmp_path, recipe, name="tiny.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(recipe))
    return path


# -- recipes -----------------------------------------------------------------------------------

def test_recipe_defaults_and_numbers_as_strings():
    r = resolve_recipe({"dataset": {"name": "digits"}, "training": {"lr": "1e-3", "epochs": 3}}, default_name="x")
    assert r["name"] == "x" and r["task"] == "classification"
    assert r["training"]["lr"] == pytest.approx(1e-3) and r["training"]["epochs"] == 3
    assert r["model"]["hidden"] == [128] and r["model"]["neuron"] == "leaky"
    assert r["dataset"]["n_steps"] == 25 and r["dataset"]["root"] is None


@pytest.mark.parametrize("raw, fragment", [
    ({"dataset": {"name": "digits"}, "model": {"hidden": []}}, "model.hidden"),
    ({"dataset": {"name": "digits"}, "model": {"recurrent": "yes"}}, "expected true/false"),
    ({"dataset": {"name": "digits"}, "training": {"epochs": True}}, "expected an integer"),
    ({"dataset": {"name": "digits"}, "training": {"optimizer": "lbfgs"}}, "training.optimizer"),
    ({"dataset": {"name": "digits", "n_step": 3}}, "did you mean 'n_steps'"),
    ({"model": {}}, "dataset.name"),
    ({"dataset": {"name": "digits"}, "training": {"lr": "nan"}}, "finite number"),
    ({"dataset": {"name": "digits"}, "training": {"lr": float("inf")}}, "finite number"),
    ({"dataset": {"name": "digits"}, "training": {"seed": 2**64}}, "below 2**63"),
    ([1, 2], "must be a YAML mapping"),
])
def test_recipe_errors_name_the_key(raw, fragment):
    with pytest.raises(ConfigError) as info:
        resolve_recipe(raw, where="r.yaml")
    assert fragment in str(info.value)


def test_shipped_recipes_resolve_and_quickstart_is_found_by_name():
    assert find_recipe("quickstart_digits") == models_dir() / "quickstart_digits.yaml"
    for path in sorted(models_dir().glob("*.yaml")):
        load_recipe(path)
    with pytest.raises(ConfigError, match="recipe file not found"):
        find_recipe("no_such_recipe")


def test_load_recipe_overrides_are_validated(tmp_path):
    path = _write(tmp_path, TINY)
    assert load_recipe(path, {"training.epochs": 7})["training"]["epochs"] == 7
    with pytest.raises(ConfigError, match="training.epochs must be >= 1"):
        load_recipe(path, {"training.epochs": 0})


# -- models ------------------------------------------------------------------------------------

@pytest.mark.parametrize("neuron", ["leaky", "synaptic"])
@pytest.mark.parametrize("readout", ["mean", "max"])
def test_model_shapes_and_record(neuron, readout):
    model = SpikingClassifier(12, 3, hidden=[7, 5], neuron=neuron, recurrent=True, readout=readout,
                              surrogate="atan", surrogate_slope=2.0)
    logits, trace = model(torch.rand(4, 2, 12), record=True)
    assert logits.shape == (2, 3)
    assert [s.shape for s, _ in trace["hidden"]] == [(4, 2, 7), (4, 2, 5)]
    assert trace["readout"].shape == (4, 2, 3)


def test_model_errors():
    model = SpikingClassifier(12, 3, hidden=[5])
    with pytest.raises(ShapeError, match="12 input channels"):
        model(torch.rand(4, 2, 13))
    with pytest.raises(ShapeError, match="got a 2-d tensor"):
        model(torch.rand(4, 12))
    with pytest.raises(UnsupportedOptionError, match="model.neuron"):
        SpikingClassifier(12, 3, neuron="adex")
    with pytest.raises(UnsupportedOptionError, match="model.surrogate"):
        SpikingClassifier(12, 3, surrogate="heaviside")
    cfg = resolve_recipe({"dataset": {"name": "digits"}, "model": {"hidden": [4], "n_inputs": 9}})["model"]
    assert build_model(cfg, n_inputs=64, n_classes=10).n_inputs == 9


def test_dropout_only_in_training():
    torch.manual_seed(0)
    plain = SpikingClassifier(12, 3, hidden=[8], recurrent=True, threshold=0.1)
    torch.manual_seed(0)
    dropped = SpikingClassifier(12, 3, hidden=[8], recurrent=True, threshold=0.1, dropout=0.5)
    x = (torch.rand(20, 4, 12) < 0.5).float()
    dropped.eval()
    assert torch.equal(dropped(x), plain(x))  # evaluation (and export) see the plain network
    dropped.train()
    assert not torch.equal(dropped(x), plain(x))
    with pytest.raises(UnsupportedOptionError, match="model.dropout"):
        SpikingClassifier(12, 3, dropout=1.0)


def test_init_scale_rescales_hidden_weights_only():
    torch.manual_seed(0)
    plain = SpikingClassifier(12, 3, hidden=[8, 6], recurrent=True)
    torch.manual_seed(0)
    scaled = SpikingClassifier(12, 3, hidden=[8, 6], recurrent=True, init_scale=0.2, recurrent_scale=0.05)
    for a, b in zip(plain.layers, scaled.layers):
        assert torch.allclose(b.fc.weight, 0.2 * a.fc.weight) and torch.allclose(b.fc.bias, 0.2 * a.fc.bias)
        assert torch.allclose(b.neuron.recurrent.weight, 0.05 * a.neuron.recurrent.weight)
    assert torch.equal(scaled.readout.fc.weight, plain.readout.fc.weight)
    for bad in (0.0, -1.0):
        with pytest.raises(UnsupportedOptionError, match="model.init_scale"):
            SpikingClassifier(12, 3, init_scale=bad)
    with pytest.raises(UnsupportedOptionError, match="model.init_scale"):
        SpikingClassifier(12, 3, init_scale=float("inf"))
    for kw in (dict(reset="subtract"), dict(reset="zero", neuron="synaptic", recurrent=True)):
        with pytest.raises(UnsupportedOptionError, match="reset_delay"):
            SpikingClassifier(12, 3, reset_delay=False, **kw)
    cfg = resolve_recipe({"dataset": {"name": "digits"}, "model": {"hidden": [4], "init_scale": 0.5}})["model"]
    assert cfg["init_scale"] == 0.5 and cfg["recurrent_scale"] == 1.0


def test_check_finite():
    check_finite(torch.zeros(2, 2), "x")
    with pytest.raises(InvalidInputError, match="1 NaN/inf"):
        check_finite(torch.tensor([0.0, float("nan")]), "x")


def test_seed_for_is_stable_and_distinct():
    assert seed_for(0, 1, 2) == seed_for(0, 1, 2)
    assert len({seed_for(0, 1, 2), seed_for(0, 2, 1), seed_for(1, 1, 2), seed_for(0, 1, 2, 0)}) == 4
    assert 0 <= seed_for(2**40, 5) < 2**63


# -- atomic writes, checkpoints ----------------------------------------------------------------

def test_atomic_write_replaces_and_leaves_no_temp_on_failure(tmp_path):
    target = tmp_path / "f.txt"
    rd.atomic_write_text(target, "old")

    def boom(f):
        f.write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        rd.atomic_write(target, boom, mode="w")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["f.txt"]


def test_atomic_files_get_the_usual_permissions(tmp_path):
    from neuroadapt._io import atomic_path

    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "g.bin") as tmp:
            with open(tmp, "wb") as fh:
                fh.write(b"x")
        rd.atomic_write_text(tmp_path / "h.txt", "y")
    finally:
        os.umask(old)
    for name in ("g.bin", "h.txt"):  # not mkstemp's 0600: others may read what we publish
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644


def test_checkpoint_roundtrip_weights_only(tmp_path):
    import random

    import numpy as np

    model = SpikingClassifier(6, 2, hidden=[4], recurrent=True)
    opt = torch.optim.Adam(model.parameters())
    model(torch.rand(3, 2, 6)).sum().backward()
    opt.step()
    ck.seed_everything(123)
    path = ck.save_checkpoint(tmp_path / "c.pt", model=model, optimizer=opt, epoch=1, batch=2, global_step=5,
                              epoch_stats={"loss_sum": 1.0, "correct": 2.0, "count": 3.0},
                              history=[{"epoch": 1, "test_accuracy": 0.5}], train_time_s=1.5, seed=123,
                              world_size=1, config_text="a: 1\n")
    expected = (random.random(), float(np.random.rand()), torch.rand(3))
    state = torch.load(path, weights_only=True)  # must not need pickle of arbitrary objects
    assert state["global_step"] == 5 and state["history"][0]["test_accuracy"] == 0.5
    ck.set_rng_state(ck.load_checkpoint(path)["rng"])
    assert (random.random(), float(np.random.rand())) == expected[:2]
    assert torch.equal(torch.rand(3), expected[2])
    fresh = SpikingClassifier(6, 2, hidden=[4], recurrent=True)
    fresh.load_state_dict(state["model"])
    torch.optim.Adam(fresh.parameters()).load_state_dict(state["optimizer"])
    with pytest.raises(CheckpointError, match="not found"):
        ck.load_checkpoint(tmp_path / "missing.pt")
    torch.save({"x": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a neuroadapt checkpoint"):
        ck.load_checkpoint(tmp_path / "other.pt")


# -- whole runs --------------------------------------------------------------------------------

def test_run_directory_contents_and_determinism(tmp_path):
    recipe = dict(TINY, training=dict(TINY["training"], plots=True, checkpoint_every=2))
    path = _write(tmp_path, recipe)
    m1 = train(path, out=tmp_path / "a", seed=4, echo=False)
    out = tmp_path / "a"
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "config.yaml", "log.txt", "metrics.json",
                                                     "plots"]
    assert sorted(p.name for p in (out / "plots").iterdir()) == ["accuracy.png", "loss.png", "membrane.png",
                                                                 "spike_raster.png"]
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("task", "dataset", "model", "test_accuracy", "history", "train_time_s"):
        assert key in metrics
    assert metrics["dataset"] == "digits" and metrics["model"] == "tiny" and len(metrics["history"]) == 2
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["training"]["seed"] == 4 and saved == resolve_recipe(saved)  # resolved and complete
    assert not rd.partial_path(out).exists()

    m2 = train(path, out=tmp_path / "b", seed=4, echo=False)
    a = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert m1["test_accuracy"] == m2["test_accuracy"]
    m3 = train(path, out=tmp_path / "c", seed=5, echo=False)
    c = torch.load(tmp_path / "c" / "checkpoint.pt", weights_only=True)["model"]
    assert not torch.equal(a["layers.0.fc.weight"], c["layers.0.fc.weight"])
    assert m3["seed"] == 5

    result = evaluate_run(out, echo=False)
    assert result["test_accuracy"] == m1["test_accuracy"]

    # --overwrite replaces a finished run only once the new one is complete
    train(path, out=out, seed=5, overwrite=True, echo=False)
    assert yaml.safe_load((out / "config.yaml").read_text())["training"]["seed"] == 5


def test_eval_every_scores_some_epochs_and_always_the_last(tmp_path):
    recipe = dict(TINY, training=dict(TINY["training"], epochs=3, eval_every=2, plots=True))
    metrics = train(_write(tmp_path, recipe), out=tmp_path / "run", echo=False)
    assert ["test_accuracy" in h for h in metrics["history"]] == [False, True, True]
    assert metrics["test_accuracy"] == metrics["history"][-1]["test_accuracy"]
    assert "epoch 1/3: train loss" in (tmp_path / "run" / "log.txt").read_text()
    assert (tmp_path / "run" / "plots" / "accuracy.png").is_file()
    with pytest.raises(ConfigError, match="eval_every"):
        resolve_recipe(dict(TINY, training=dict(TINY["training"], eval_every=0)))


def test_api_restores_thread_count(tmp_path):
    before = torch.get_num_threads()
    recipe = dict(TINY, training=dict(TINY["training"], epochs=1, threads=1))
    train(_write(tmp_path, recipe), out=tmp_path / "r", echo=False)
    assert torch.get_num_threads() == before


def test_eval_rejects_incomplete_dirs(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(CheckpointError, match="no config.yaml"):
        evaluate_run(tmp_path / "d", echo=False)
    (tmp_path / "d" / "config.yaml").write_text(yaml.safe_dump(TINY))
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        evaluate_run(tmp_path / "d", echo=False)


def test_prepare_out_rules(tmp_path):
    out = tmp_path / "run"
    assert rd.prepare_out(out, resume=False, overwrite=False) == "new"
    rd.partial_path(out).mkdir()
    with pytest.raises(CheckpointError, match="unfinished run"):
        rd.prepare_out(out, resume=False, overwrite=False)
    (rd.partial_path(out) / "checkpoint.pt").write_bytes(b"")
    assert rd.prepare_out(out, resume=True, overwrite=False) == "resume-partial"
    assert rd.partial_path(out) == Path(str(out) + ".partial")
