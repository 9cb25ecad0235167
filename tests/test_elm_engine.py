"""ELM in the engine: recipes (model.type elm / branch_elm), training end to end, SHD-Adding."""

import json

import numpy as np
import pytest
import torch

from neuroadapt.cli import main
from neuroadapt.data.shd import write_shd
from neuroadapt.engine.config import load_recipe, resolve_recipe
from neuroadapt.engine.models import build_model
from neuroadapt.errors import ConfigError


def _folder(tmp_path, n_train=40, n_test=20):
    rng = np.random.default_rng(0)
    root = tmp_path / "shd"
    for split, n in (("train", n_train), ("test", n_test)):
        labels = rng.integers(0, 20, n)
        units = [np.sort(rng.integers(30 * (y % 20), 30 * (y % 20) + 30, 120)) for y in labels]
        times = [np.sort(rng.uniform(0, 0.9, 120)) for _ in range(n)]
        write_shd(root / f"shd_{split}.h5", times, units, labels, speakers=rng.integers(0, 4, n))
    return root


def _raw(model, dataset=None):
    return {"task": "classification", "dataset": dataset or {"name": "shd", "dt": 0.05},
            "model": model, "training": {"epochs": 1}}


def test_elm_recipe_defaults_and_dt_from_the_data_set():
    r = resolve_recipe(_raw({"type": "elm", "n_memory": 8}))
    assert r["model"]["dt"] == 0.05 and r["model"]["readout"] == "last" and r["model"]["version"] == "v1"
    b = resolve_recipe(_raw({"type": "branch_elm", "n_branches": 10, "synapses_per_branch": 3}))
    assert b["model"]["routing"] == "random"
    model = build_model(b["model"], 700, 20)
    assert model.elm.n_branches == 10 and model.elm.route.numel() == 30 and model.elm.dt == 0.05


@pytest.mark.parametrize("model,fragment", [
    ({"type": "elm", "hidden": [64]}, "unknown key 'hidden'"),
    ({"type": "elm", "n_branches": 10}, "branch_elm"),
    ({"type": "branch_elm"}, "n_branches"),
    ({"type": "branch_elm", "n_branches": 4, "routing": "diagonal"}, "routing"),
    ({"type": "elm", "tau_m_min": 0.5, "tau_m_max": 0.1}, "out of order"),
    ({"type": "elm", "tau_m_init": [0.001, 5.0]}, "tau_m_init"),
    ({"type": "elm", "readout": "max"}, "readout"),
    ({"type": "elm", "version": "v3"}, "version"),
    ({"type": "elm", "input_dropout": 1.0}, "input_dropout"),
    ({"type": "elmo"}, "elm"),
])
def test_elm_recipe_errors_name_the_key(model, fragment):
    with pytest.raises(ConfigError) as info:
        resolve_recipe(_raw(model), where="r.yaml")
    assert fragment in str(info.value) and "r.yaml" in str(info.value)


def test_elm_on_a_data_set_without_dt_needs_model_dt():
    with pytest.raises(ConfigError, match="model.dt"):
        resolve_recipe(_raw({"type": "elm"}, {"name": "digits"}))
    r = resolve_recipe(_raw({"type": "elm", "dt": 0.001}, {"name": "digits"}))
    assert r["model"]["dt"] == 0.001


def test_readouts_and_record():
    for readout in ("last", "sum", "mean"):
        cfg = resolve_recipe(_raw({"type": "elm", "n_memory": 4, "readout": readout}))["model"]
        model = build_model(cfg, 30, 5)
        x = (torch.rand(7, 2, 30) < 0.2).float()
        logits, rec = model(x, record=True)
        y = rec["readout"]
        expect = {"last": y[-1], "sum": y.sum(0), "mean": y.mean(0)}[readout]
        assert logits.shape == (2, 5) and torch.allclose(logits, expect)
        assert rec["memory"].shape == (7, 2, 4)


def test_train_eval_and_refused_export_through_the_cli(tmp_path, capsys, monkeypatch):
    root = _folder(tmp_path)
    recipe = tmp_path / "elm.yaml"
    recipe.write_text("""
task: classification
dataset: {name: shd, dt: 0.05, duration: 1.0}
model: {type: branch_elm, n_memory: 8, n_branches: 20, synapses_per_branch: 4, tau_m_init: [0.05, 1.0]}
training: {epochs: 2, batch_size: 10, lr: 5.0e-3, progress: false, threads: 1}
""")
    out = tmp_path / "run"
    assert main(["train", str(recipe), "--data-root", str(root), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["architecture"]["type"] == "branch_elm" and metrics["n_parameters"] > 0
    assert (out / "plots" / "loss.png").is_file() and not (out / "plots" / "spike_raster.png").exists()
    capsys.readouterr()
    assert main(["eval", str(out), "--data-root", str(root)]) == 0
    assert f"{metrics['test_accuracy']:.4f}" in capsys.readouterr().out
    from neuroadapt.engine.exporting import load_run

    model, _, _ = load_run(out, data_root=root)
    assert "cannot be exported" in model.export_unsupported_reason
    # export: refused before any target runs or anything is written (a stand-in target records calls)
    import types

    import neuroadapt.export as export_registry

    calls = []
    fake = types.SimpleNamespace(export_model=lambda *a, **k: calls.append(a) or {})
    monkeypatch.setattr(export_registry, "get_target", lambda name: fake)
    capsys.readouterr()
    for target in ("nir", "loihi", "spinnaker", "aer"):
        assert main(["export", str(out), "--to", target, "--data-root", str(root)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "MLP" in err[0] and "spiking" in err[0], err
        assert not (out / f"export-{target}").exists() and not (out / f"export-{target}.partial").exists()
    assert calls == []

def test_shd_adding_pairs_and_labels(tmp_path):
    from neuroadapt.data import get_dataset_class

    root = _folder(tmp_path)
    ds = get_dataset_class("shd_adding")(root=root, base="shd", dt=0.05, duration=1.0, n_train=30)
    assert ds.n_classes == 19 and ds.n_steps == 40 and ds.num_samples("train") == 30
    base = ds.base
    x, y = ds.batch("test", torch.arange(5))
    pairs = ds._pairs["test"][:5]
    x1, y1 = base.batch("test", torch.as_tensor(pairs[:, 0]))
    x2, y2 = base.batch("test", torch.as_tensor(pairs[:, 1]))
    assert x.shape == (40, 5, 700) and torch.equal(x[:20], x1) and torch.equal(x[20:], x2)
    assert torch.equal(y, y1 % 10 + y2 % 10) and torch.equal(ds.labels("test")[:5], y)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    a, b = ds.batch("train", torch.arange(4), g1), ds.batch("train", torch.arange(4), g2)
    assert torch.equal(a[0], b[0]) and int(a[1].max()) <= 18
    with pytest.raises(ConfigError, match="base"):
        get_dataset_class("shd_adding")(root=root, base="cifar")


def test_shipped_elm_recipes_resolve():
    from neuroadapt.engine.config import models_dir

    names = sorted(p.stem for p in models_dir().glob("*elm*.yaml"))
    assert "spoken_digits_elm" in names
    for name in names:
        r = load_recipe(models_dir() / f"{name}.yaml")
        assert r["model"]["type"] in ("elm", "branch_elm") and r["model"]["dt"] > 0


def test_bench_elm_quick_run_checks_its_peers(capfd):
    from neuroadapt.engine import bench

    assert "elm" in bench.list_benchmarks()
    rc = bench.main("elm", as_json=True, quick=True, overrides={"threads": 1})
    lines = [ln for ln in capfd.readouterr().out.splitlines() if ln.strip()]
    result = json.loads(lines[-1])
    assert set(result) == {"bench", "config", "results_ms", "ratios"} and result["bench"] == "elm"
    assert set(result["results_ms"]) == {"neuroadapt", "neuroadapt_blas", "stepwise", "lstm"}
    assert all(v > 0 for v in result["results_ms"].values())
    assert set(result["ratios"]) == {"stepwise_over_neuroadapt", "lstm_over_neuroadapt", "neuroadapt_blas_over_neuroadapt"}
    cfg = result["config"]
    assert cfg["outputs_match"] is True and cfg["output_max_rel_diff"] < 1e-4 and cfg["threads"] == 1
    assert rc == 0


def test_bench_stepwise_twin_is_the_same_model():
    """The benchmark's step-by-step peer computes what nn.ELM computes (incl. Branch-ELM)."""
    from neuroadapt.engine.bench import load_module
    from neuroadapt.nn import ELM

    stepwise = load_module("elm").stepwise_forward
    torch.manual_seed(0)
    x = (torch.rand(15, 3, 20) < 0.2).double()
    for opts in ({}, {"n_branches": 6, "synapses_per_branch": 5, "routing": "random", "mlp_layers": 2}):
        elm = ELM(20, 4, n_memory=5, **opts).double()
        assert torch.allclose(stepwise(elm, x), elm(x)[0], atol=1e-12)
