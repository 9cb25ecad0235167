"""kill -9 mid-run, resume, and reach bit-identical weights to an uninterrupted run (same seed)."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from neuroadapt.engine.run import train

HANG_ENV = "NEUROADAPT_TEST_HANG_AFTER_STEP"

# 96 training samples / batch 16 = 6 steps per epoch; checkpoints at steps 3, 6 (epoch end), 9, ...
TINY = {
    "name": "tiny",
    "dataset": {"name": "digits", "n_steps": 8, "max_train": 96, "max_test": 48},
    # dropout: the resumed run must draw the same masks (they are seeded per batch)
    "model": {"hidden": [16], "recurrent": True, "dropout": 0.3},
    "training": {"epochs": 3, "batch_size": 16, "eval_batch_size": 48, "lr": 5.0e-3, "checkpoint_every": 3,
                 "label_smoothing": 0.1,
                 "threads": 1, "plots": False, "progress": False},
}


def _write(tmp_path, recipe):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _wait_for_step(ckpt_path, step, proc, timeout=180.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"training exited early (rc {proc.returncode}):\n{out}\n{err}")
        if ckpt_path.is_file():
            state = torch.load(ckpt_path, weights_only=True)
            if state["global_step"] == step:
                return state
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"no checkpoint of step {step} within {timeout}s")


def test_kill9_then_resume_is_bit_identical(tmp_path):
    recipe = _write(tmp_path, TINY)
    ref = train(recipe, out=tmp_path / "ref", seed=3, echo=False)

    out = tmp_path / "killed"
    env = dict(os.environ, **{HANG_ENV: "9"})  # stops (sleeps) after the checkpoint of step 9
    proc = subprocess.Popen(
        [sys.executable, "-m", "neuroadapt.cli", "train", str(recipe), "--out", str(out), "--seed", "3"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    partial = tmp_path / "killed.partial"
    state = _wait_for_step(partial / "checkpoint.pt", 9, proc)
    assert (state["epoch"], state["batch"]) == (1, 3)  # mid-way through epoch 2
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()  # an unfinished run never shows up under --out
    assert not (partial / "metrics.json").exists()
    assert not [p for p in partial.iterdir() if p.name.endswith(".tmp")]

    resumed = train(recipe, out=out, seed=3, resume=True, echo=False)
    assert not partial.exists() and (out / "metrics.json").is_file()

    a = torch.load(tmp_path / "ref" / "checkpoint.pt", weights_only=True)
    b = torch.load(out / "checkpoint.pt", weights_only=True)
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert a["global_step"] == b["global_step"] == 18
    drop = ("time_s",)
    assert [{k: v for k, v in h.items() if k not in drop} for h in ref["history"]] == \
           [{k: v for k, v in h.items() if k not in drop} for h in resumed["history"]]
    assert "resumed from checkpoint.pt: epoch 2, batch 3, step 9" in (out / "log.txt").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.3])
def test_kill9_at_an_arbitrary_moment_still_resumes_identically(tmp_path, delay):
    """No test hook: kill -9 whenever the first checkpoint exists (+ delay), possibly mid-write."""
    recipe_dict = dict(TINY, training=dict(TINY["training"], checkpoint_every=1, epochs=4))
    recipe = _write(tmp_path, recipe_dict)
    train(recipe, out=tmp_path / "ref", seed=8, echo=False)
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "neuroadapt.cli", "train", str(recipe), "--out", str(out), "--seed", "8"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    ckpt = tmp_path / "killed.partial" / "checkpoint.pt"
    deadline = time.monotonic() + 180
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    if not out.exists():  # (the run may have finished before the kill on a fast machine)
        train(recipe, out=out, seed=8, resume=True, echo=False)
    a = torch.load(tmp_path / "ref" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
