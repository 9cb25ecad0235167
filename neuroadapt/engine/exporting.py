"""``neuroadapt export RUN_DIR --to TARGET``: load a run's model and hand it to an export target.

The export folder (default ``RUN_DIR/export-<target>``) is built as ``<out>.partial`` and renamed
only when the target succeeded, so a failed export (unsupported layer, value that overflows a
hardware format, missing toolchain) leaves nothing half-written.
"""
from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import torch

from neuroadapt.engine import trainer as tr
from neuroadapt.engine.evaluate import load_trained, read_run_recipe
from neuroadapt.errors import ConfigError, UnsupportedOptionError

__all__ = ["load_run", "export_run", "verification_inputs", "unsupported_reason"]


def load_run(run_dir, data_root=None):
    """``(model, recipe, dataset)`` of a run directory: the checkpoint's weights in the model its
    ``config.yaml`` describes, in eval mode on the CPU."""
    run_dir, recipe = read_run_recipe(run_dir, data_root)
    model, dataset, _ = load_trained(run_dir, recipe)
    return model, recipe, dataset


def verification_inputs(dataset, recipe: dict, n: int | None = None):
    """Test-split inputs ``(T, B, N)`` and labels for verification: the first ``n`` test samples
    (all by default), drawn exactly as ``neuroadapt eval`` draws them (same batches, same
    per-batch generators), so accuracies measured on them match the run's recorded test accuracy."""
    import math

    total = dataset.num_samples("test")
    n = total if n is None else max(1, min(int(n), total))
    size = recipe["training"]["eval_batch_size"]
    xs, ys = [], []
    for b in range(math.ceil(n / size)):
        idx = torch.arange(b * size, min(n, (b + 1) * size))
        x, y = dataset.batch("test", idx, tr.generator(recipe["training"]["seed"], tr.EVAL, b))
        xs.append(x)
        ys.append(y)
    return torch.cat(xs, dim=1), torch.cat(ys)


def target_options(target) -> list[str]:
    """Keyword options a target's ``export_model`` accepts beyond the common ones."""
    import inspect

    common = {"model", "out_dir", "dt", "verify", "inputs", "labels"}
    params = inspect.signature(target.export_model).parameters.values()
    return [p.name for p in params if p.kind is p.KEYWORD_ONLY and p.name not in common]


def unsupported_reason(model) -> str | None:
    """The ``export_unsupported_reason`` of the first module in ``model`` that has one (e.g. ELM
    neurons, which no export target can represent), else ``None``."""
    for module in model.modules():
        reason = getattr(module, "export_unsupported_reason", None)
        if reason:
            return str(reason)
    return None


def export_run(run_dir, to: str, *, out=None, verify: bool = False, data_root=None, n_verify: int | None = None,
               overwrite: bool = False, echo: bool = True, options: dict | None = None) -> dict:
    """Export a run directory's model to target ``to``; returns the target's report (also written
    to ``<out>/metrics.json``). ``options`` are the target's own keyword options (e.g. SpiNNaker's
    ``subtract="fir"``); :func:`target_options` lists them."""
    from neuroadapt.export import get_target

    target = get_target(to)  # unknown target: fail before loading anything
    options = dict(options or {})
    allowed = target_options(target)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise UnsupportedOptionError(f"export --to {to}: unknown option(s) {', '.join(unknown)}; "
                                     f"this target takes {', '.join(allowed) or 'no options'}")
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / f"export-{to}"
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} already exists; choose another --out or remove it")
    model, recipe, dataset = load_run(run_dir, data_root)
    refusal = unsupported_reason(model)
    if refusal is not None:
        raise UnsupportedOptionError(f"cannot export {run_dir} to {to}: {refusal}")
    dt = float(recipe["dataset"].get("dt") or 1e-3)
    inputs = labels = None
    if verify or getattr(target, "NEEDS_INPUTS", False):  # e.g. the events target runs the model
        inputs, labels = verification_inputs(dataset, recipe, n_verify)
    if "input_copies" in allowed and options.get("input_copies") is None:
        # spike-count inputs: as many source neurons per channel as the whole test split's largest count
        # (not just the --n-verify samples), with or without --verify
        full = inputs if inputs is not None and n_verify is None else verification_inputs(dataset, recipe)[0]
        top = float(full.max()) if full.numel() else 1.0
        if math.isfinite(top) and top == round(top):
            options["input_copies"] = max(1, int(top))
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    try:
        report = target.export_model(model, partial, dt=dt, verify=verify, inputs=inputs, labels=labels, **options)
        report = {"task": recipe["task"], "dataset": recipe["dataset"]["name"], "model": recipe["name"],
                  "target": to, "dt": dt, **({"options": options} if options else {}), **report}
        with open(partial / "metrics.json", "w") as fh:
            json.dump(report, fh, indent=2, sort_keys=True)
        if out.exists():
            shutil.rmtree(out)
        os.replace(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    report["out"] = str(out)
    if echo:
        print(json.dumps(report, indent=2, sort_keys=True))
    return report
