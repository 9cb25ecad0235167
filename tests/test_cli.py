"""Bad input to the CLI: one line `error: ...` on stderr, exit code 2, no traceback, nothing written."""
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from neuroadapt.cli import main
from neuroadapt.data import register_dataset

TINY = {
    "name": "tiny",
    "dataset": {"name": "digits", "n_steps": 5, "max_train": 32, "max_test": 16},
    "model": {"hidden": [8]},
    "training": {"epochs": 1, "batch_size": 16, "threads": 1, "plots": False, "progress": False},
}


def _recipe(tmp_path, recipe=None, text=None, name="recipe.yaml"):
    path = tmp_path / name
    path.write_text(text if text is not None else yaml.safe_dump(recipe))
    return path


def _with(section, **values):
    recipe = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY.items()}
    recipe[section].update(values)
    return recipe


def _run_main(capsys, argv):
    rc = main(argv)
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def _assert_one_line_error(rc, err, *fragments):
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _assert_nothing_written(out):
    assert not out.exists()
    assert not out.with_name(out.name + ".partial").exists()


BAD_RECIPES = {
    "unknown_key": (_with("model", hiden=[8]), ("unknown key 'hiden'", "did you mean 'hidden'")),
    "unknown_top_key": ({**TINY, "trainig": {}}, ("unknown key 'trainig'", "allowed:")),
    "wrong_type": (_with("training", epochs="many"), ("training.epochs", "expected an integer")),
    "unknown_neuron": (_with("model", neuron="izhikevich"), ("model.neuron", "'izhikevich'", "leaky, synaptic")),
    "unknown_reset": (_with("model", reset="soft"), ("model.reset", "'soft'")),
    "unknown_dataset": (_with("dataset", name="mnist"), ("unknown dataset 'mnist'", "digits")),
    "bad_encoding": (_with("dataset", encoding="phase"), ("dataset.encoding", "'phase'")),
    "wrong_shape": (_with("model", n_inputs=100), ("100 input", "(T, B, 100)")),
}


@pytest.mark.parametrize("case", sorted(BAD_RECIPES))
def test_bad_recipe(tmp_path, capsys, case):
    recipe, fragments = BAD_RECIPES[case]
    path = _recipe(tmp_path, recipe)
    out = tmp_path / "run"
    rc, _, err = _run_main(capsys, ["train", str(path), "--out", str(out)])
    _assert_one_line_error(rc, err, *fragments)
    _assert_nothing_written(out)


def test_missing_recipe_file(tmp_path, capsys):
    out = tmp_path / "run"
    rc, _, err = _run_main(capsys, ["train", str(tmp_path / "nope.yaml"), "--out", str(out)])
    _assert_one_line_error(rc, err, "recipe file not found", "nope.yaml")
    _assert_nothing_written(out)


def test_invalid_yaml(tmp_path, capsys):
    path = _recipe(tmp_path, text="dataset: {name: digits\nmodel: [1, 2\n")
    out = tmp_path / "run"
    rc, _, err = _run_main(capsys, ["train", str(path), "--out", str(out)])
    _assert_one_line_error(rc, err, "invalid YAML", "line")
    _assert_nothing_written(out)


def test_nan_in_input_data(tmp_path, capsys):
    images = np.random.default_rng(0).random((40, 8, 8)).astype(np.float32)
    images[7, 3, 3] = np.nan
    np.savez(tmp_path / "digits.npz", images=images, labels=np.arange(40) % 10)
    path = _recipe(tmp_path, TINY)
    out = tmp_path / "run"
    rc, _, err = _run_main(capsys, ["train", str(path), "--out", str(out), "--data-root", str(tmp_path)])
    _assert_one_line_error(rc, err, "NaN", "sample 7")
    _assert_nothing_written(out)


class _NaNLater:
    """A data set whose 2nd training batch holds a NaN: only the engine's per-batch check sees it."""

    name, task, n_inputs, n_classes, n_steps = "nan_later", "classification", 4, 2, 3
    OPTIONS = {}

    def __init__(self, root=None):
        self.calls = 0

    def num_samples(self, split):
        return 8

    def labels(self, split):
        return torch.arange(8) % 2

    def batch(self, split, index, generator=None):
        x = torch.ones(self.n_steps, len(index), self.n_inputs)
        if split == "train":
            self.calls += 1
            if self.calls == 2:
                x[1, 0, 2] = float("inf")
        return x, torch.as_tensor(index) % 2


def test_nan_batch_stops_before_forward(tmp_path, capsys):
    register_dataset("nan_later", _NaNLater)
    recipe = {"dataset": {"name": "nan_later"}, "model": {"hidden": [4]},
              "training": {"epochs": 1, "batch_size": 4, "checkpoint_every": 0, "plots": False, "progress": False}}
    out = tmp_path / "run"
    rc, _, err = _run_main(capsys, ["train", str(_recipe(tmp_path, recipe)), "--out", str(out)])
    _assert_one_line_error(rc, err, "training batch 1 of epoch 1", "NaN/inf")
    _assert_nothing_written(out)  # failed before the first checkpoint: the partial run is removed


def test_resume_without_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    rc, _, err = _run_main(capsys, ["train", str(_recipe(tmp_path, TINY)), "--out", str(out), "--resume"])
    _assert_one_line_error(rc, err, "--resume", "no checkpoint")
    _assert_nothing_written(out)


def test_existing_out_needs_resume_or_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    rc, _, err = _run_main(capsys, ["train", str(_recipe(tmp_path, TINY)), "--out", str(out)])
    _assert_one_line_error(rc, err, "already exists", "--overwrite")
    rc, _, err = _run_main(capsys, ["train", str(_recipe(tmp_path, TINY)), "--out", str(out), "--overwrite"])
    _assert_one_line_error(rc, err, "not a neuroadapt run directory")
    assert (out / "notes.txt").read_text() == "mine"


def test_eval_missing_run_dir(tmp_path, capsys):
    rc, _, err = _run_main(capsys, ["eval", str(tmp_path / "nothing")])
    _assert_one_line_error(rc, err, "run directory not found")


def test_train_then_eval_via_main(tmp_path, capsys):
    out = tmp_path / "run"
    rc, stdout, err = _run_main(capsys, ["train", str(_recipe(tmp_path, TINY)), "--out", str(out), "--seed", "2"])
    assert rc == 0, err
    assert "done: test accuracy" in stdout
    rc, stdout, err = _run_main(capsys, ["eval", str(out), "--json"])
    assert rc == 0, err
    import json

    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["test_accuracy"] == result["recorded_test_accuracy"]


def test_subprocess_error_is_one_line_and_help_is_light(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "neuroadapt.cli", "train", str(tmp_path / "missing.yaml")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: recipe file not found")
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    code = ("import sys; from neuroadapt.cli import build_parser; build_parser().format_help(); "
            "assert 'torch' not in sys.modules, 'neuroadapt --help imports torch'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_unknown_bench_and_sim_names_are_one_line_errors(capsys):
    rc, _, err = _run_main(capsys, ["bench", "no-such-bench"])
    _assert_one_line_error(rc, err, "no-such-bench")
    rc, _, err = _run_main(capsys, ["sim", "no_such_sim"])
    _assert_one_line_error(rc, err, "unknown simulation")
