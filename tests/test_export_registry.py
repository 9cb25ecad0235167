"""The export registry and `neuroadapt export`'s run-dir handling (each target has its own tests).

A stand-in target module (registered for the test) exercises the engine side: the model handed
over, verification inputs, metrics.json, and that a failing target leaves no folder behind."""
import json
import sys
import types

import pytest
import torch
import yaml

from neuroadapt import export as ex
from neuroadapt.engine.exporting import export_run
from neuroadapt.engine.run import train
from neuroadapt.errors import CheckpointError, ConfigError, UnsupportedOptionError

TINY = {
    "name": "tiny",
    "dataset": {"name": "digits", "n_steps": 6, "max_train": 32, "max_test": 12},
    "model": {"hidden": [8]},
    "training": {"epochs": 1, "batch_size": 16, "eval_batch_size": 12, "threads": 1, "plots": False,
                 "progress": False},
}


def test_targets_listed():
    assert ex.targets() == ["aer", "loihi", "nir", "spinnaker"]


def test_unknown_target_named_before_anything_is_loaded(tmp_path):
    with pytest.raises(UnsupportedOptionError, match="choose one of aer, loihi, nir, spinnaker"):
        ex.get_target("truenorth")
    with pytest.raises(UnsupportedOptionError, match="truenorth"):
        export_run(tmp_path / "missing", "truenorth")


@pytest.fixture()
def fake_target(monkeypatch):
    calls = []
    mod = types.ModuleType("neuroadapt_test_fake_target")

    def export_model(model, out_dir, *, dt, verify=False, inputs=None, labels=None):
        calls.append({"model": model, "dt": dt, "inputs": inputs, "labels": labels})
        (out_dir / "net.txt").write_text("weights")
        if getattr(mod, "fail", False):
            raise UnsupportedOptionError("layer X cannot be exported")
        return {"files": ["net.txt"], "spike_mismatches": 0}

    mod.export_model = export_model
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    monkeypatch.setitem(ex.TARGETS, "fake", mod.__name__)
    return mod, calls


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    recipe = tmp / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(TINY))
    out = tmp / "run"
    train(recipe, out=out, echo=False)
    return out


def test_missing_run_dir(tmp_path, fake_target):
    with pytest.raises(CheckpointError, match="not found"):
        export_run(tmp_path / "missing", "fake")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no config.yaml"):
        export_run(tmp_path / "empty", "fake")
    assert not (tmp_path / "empty" / "export-fake").exists()


def test_export_hands_the_trained_model_over(run_dir, tmp_path, fake_target):
    mod, calls = fake_target
    out = tmp_path / "out"
    report = export_run(run_dir, "fake", out=out, verify=True, n_verify=5, echo=False)
    assert report["spike_mismatches"] == 0 and report["target"] == "fake" and report["model"] == "tiny"
    call = calls[-1]
    assert not call["model"].training
    ckpt = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    for k, v in call["model"].state_dict().items():
        assert torch.equal(v, ckpt["model"][k])
    assert call["inputs"].shape[:2] == (6, 5) and call["labels"].shape == (5,)
    assert json.loads((out / "metrics.json").read_text())["files"] == ["net.txt"]
    with pytest.raises(ConfigError, match="already exists"):
        export_run(run_dir, "fake", out=out, echo=False)


def test_failed_export_leaves_nothing(run_dir, tmp_path, fake_target):
    mod, _ = fake_target
    mod.fail = True
    out = tmp_path / "out2"
    with pytest.raises(UnsupportedOptionError, match="layer X"):
        export_run(run_dir, "fake", out=out, echo=False)
    assert list(tmp_path.iterdir()) == []


def test_verification_inputs_are_the_eval_inputs(run_dir):
    """Accuracy measured on exported models must be comparable with the run's test accuracy:
    the inputs are drawn batch by batch exactly as evaluation draws them (rate-coded digits are
    random, so a different draw would give a different number)."""
    from neuroadapt.engine import trainer as tr
    from neuroadapt.engine.exporting import load_run, verification_inputs

    model, recipe, dataset = load_run(run_dir)
    recipe["training"]["eval_batch_size"] = 5  # several batches
    x, y = verification_inputs(dataset, recipe)
    assert x.shape[1] == dataset.num_samples("test") == 12
    with torch.no_grad():
        logits = model(x)
    ref = tr.evaluate(model, dataset, "test", 5, recipe["training"]["seed"], torch.device("cpu"))
    assert float((logits.argmax(1) == y).double().mean()) == pytest.approx(ref["accuracy"], abs=1e-12)
    # the loss is continuous in the inputs: another draw of the rate code would change it
    loss = float(torch.nn.functional.cross_entropy(logits, y))
    assert loss == pytest.approx(ref["loss"], rel=1e-5)


def test_target_options_pass_through_and_unknown_ones_are_named(run_dir, tmp_path, fake_target, monkeypatch):
    mod, calls = fake_target
    seen = {}

    def export_model(model, out_dir, *, dt, verify=False, inputs=None, labels=None, mode: str = "a", k: int = 1):
        seen.update(mode=mode, k=k)
        return {}

    monkeypatch.setattr(mod, "export_model", export_model)
    from neuroadapt.cli import main

    assert main(["export", str(run_dir), "--to", "fake", "--out", str(tmp_path / "o"),
                 "--option", "mode=fir", "--option", "k=3"]) == 0
    assert seen == {"mode": "fir", "k": 3}
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["options"] == {"mode": "fir", "k": 3}
    with pytest.raises(UnsupportedOptionError, match="takes mode, k"):
        export_run(run_dir, "fake", out=tmp_path / "p", options={"colour": 1}, echo=False)
    assert main(["export", str(run_dir), "--to", "fake", "--out", str(tmp_path / "q"), "--option", "nokey"]) == 2
    assert not (tmp_path / "p").exists() and not (tmp_path / "q").exists()
