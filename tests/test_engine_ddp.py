"""torchrun with 2 gloo processes == one process with the same global batch and seed."""
import os
import subprocess
import sys

import torch
import yaml

from neuroadapt.engine.run import train

# 61 training samples, global batch 16 (8 per rank): 4 steps, the last one of 13 samples split 7/6 --
# so the loss reduction must be right for unequal shards too. Evaluation batches of 15 (8/7 per rank)
# exercise the sharded evaluation and its all-reduce.
TINY = {
    "name": "tiny_ddp",
    "dataset": {"name": "digits", "n_steps": 6, "max_train": 61, "max_test": 40},
    "model": {"hidden": [12], "recurrent": True},
    "training": {"epochs": 1, "batch_size": 16, "eval_batch_size": 15, "lr": 5.0e-3, "threads": 1,
                 "plots": False, "progress": False},
}


def test_ddp_two_ranks_match_single_process(tmp_path):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(TINY))
    single = train(recipe, out=tmp_path / "single", seed=11, echo=False)

    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                             "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "neuroadapt.cli", "train", str(recipe), "--out", str(tmp_path / "ddp"), "--seed", "11"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "world size 2" in proc.stdout
    assert proc.stdout.count("done: test accuracy") == 1  # only rank 0 reports and writes

    a = torch.load(tmp_path / "single" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "ddp" / "checkpoint.pt", weights_only=True)
    assert b["world_size"] == 2 and a["global_step"] == b["global_step"] == 4
    for key in a["model"]:
        torch.testing.assert_close(b["model"][key], a["model"][key], rtol=0, atol=1e-5, msg=key)
    ddp_metrics = yaml.safe_load((tmp_path / "ddp" / "metrics.json").read_text())
    assert abs(ddp_metrics["history"][0]["train_loss"] - single["history"][0]["train_loss"]) < 1e-5
    assert ddp_metrics["n_test"] == single["n_test"] == 40
    assert not (tmp_path / "ddp.partial").exists()
