"""``neuroadapt eval RUN_DIR``: re-evaluate a run's checkpoint on its test split (writes nothing)."""
from __future__ import annotations

import os
from pathlib import Path

from neuroadapt.engine import trainer as tr
from neuroadapt.engine.checkpoint import load_checkpoint
from neuroadapt.engine.config import load_yaml, resolve_recipe
from neuroadapt.engine.models import build_model
from neuroadapt.engine.runtime import CHECKPOINT, apply_runtime, build_dataset, read_metrics
from neuroadapt.errors import CheckpointError

__all__ = ["evaluate_run", "read_run_recipe", "load_trained"]


def read_run_recipe(run_dir, data_root=None) -> tuple[Path, dict]:
    """The resolved recipe of a run directory (``config.yaml``), with ``data_root`` applied."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory not found: {run_dir}")
    if not (run_dir / "config.yaml").is_file():
        raise CheckpointError(f"{run_dir} is not a run directory (no config.yaml)")
    recipe = resolve_recipe(load_yaml(run_dir / "config.yaml", "run config"), str(run_dir / "config.yaml"))
    if data_root is not None:
        recipe["dataset"]["root"] = os.fspath(data_root)
    return run_dir, recipe


def load_trained(run_dir: Path, recipe: dict):
    """``(model, dataset, checkpoint)``: the checkpoint's weights in the model ``recipe`` describes
    (on the CPU, in eval mode)."""
    ckpt = load_checkpoint(run_dir / CHECKPOINT)
    dataset = build_dataset(recipe)
    model = build_model(recipe["model"], dataset.n_inputs, dataset.n_classes)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{run_dir / CHECKPOINT} does not fit the model in config.yaml: "
                              f"{str(exc).splitlines()[0]}") from None
    return model.eval(), dataset, ckpt


def evaluate_run(run_dir, data_root=None, device: str | None = None, echo: bool = True) -> dict:
    """Re-evaluate a run directory's checkpoint on its test split (writes nothing)."""
    run_dir, recipe = read_run_recipe(run_dir, data_root)
    cfg = recipe["training"]
    dev = tr.resolve_device(device or cfg["device"])
    restore = apply_runtime(cfg, dev)
    try:
        return _evaluate(run_dir, recipe, cfg, dev, echo)
    finally:
        restore()


def _evaluate(run_dir: Path, recipe: dict, cfg: dict, dev, echo: bool) -> dict:
    model, dataset, ckpt = load_trained(run_dir, recipe)
    model = model.to(dev)
    result = tr.evaluate(model, dataset, "test", cfg["eval_batch_size"], cfg["seed"], dev)
    out = {"task": recipe["task"], "dataset": recipe["dataset"]["name"], "model": recipe["name"],
           "test_accuracy": result["accuracy"], "test_loss": result["loss"], "n_test": result["n"],
           "epoch": ckpt["epoch"]}
    if (run_dir / "metrics.json").is_file():
        out["recorded_test_accuracy"] = read_metrics(run_dir).get("test_accuracy")
    if echo:
        rec = out.get("recorded_test_accuracy")
        extra = f" (metrics.json: {rec:.4f})" if isinstance(rec, float) else ""
        print(f"test accuracy: {out['test_accuracy']:.4f} on {out['n_test']} samples{extra}")
    return out
