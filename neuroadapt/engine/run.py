"""Runs: ``train`` (fresh or resumed, single process or torchrun/DDP), ``eval`` and ``quickstart``.

Order of work in :func:`train`: resolve the recipe -> build the data set and the model and push
one test batch through it (every bad input fails here, before anything is written) -> create
``<out>.partial/`` -> train with checkpoints -> write metrics and plots -> rename to ``<out>/``.
"""
from __future__ import annotations

import math
import os
import platform
import time
from pathlib import Path

import torch

from neuroadapt.engine import distributed as dist_
from neuroadapt.engine import rundir as rd
from neuroadapt.engine import trainer as tr
from neuroadapt.engine.checkpoint import load_checkpoint, save_checkpoint, seed_everything, set_rng_state
from neuroadapt.engine.config import dump_recipe, find_recipe, load_recipe, load_yaml, resolve_recipe
from neuroadapt.engine.evaluate import evaluate_run  # noqa: F401  (re-exported)
from neuroadapt.engine.runtime import CHECKPOINT, apply_runtime, build_dataset, preflight, read_metrics
from neuroadapt.errors import ConfigError

__all__ = ["train", "evaluate_run", "quickstart", "build_dataset", "QUICKSTART_RECIPE"]

QUICKSTART_RECIPE = "spoken_digits_rlif"
_RESUME_FREE = {("training", "epochs"), ("training", "device"), ("training", "progress"), ("dataset", "root")}


def _config_diff(a: dict, b: dict) -> list[str]:
    keys = []
    for section in ("name", "task", "dataset", "model", "training"):
        va, vb = a.get(section), b.get(section)
        if isinstance(va, dict) and isinstance(vb, dict):
            keys += [f"{section}.{k}" for k in sorted(set(va) | set(vb))
                     if (section, k) not in _RESUME_FREE | {("training", "seed")} and va.get(k) != vb.get(k)]
        elif va != vb:
            keys.append(section)
    return keys


def train(recipe_path, out=None, *, epochs=None, device=None, seed=None, data_root=None,
          resume: bool = False, overwrite: bool = False, echo: bool = True) -> dict:
    """Train a recipe into the run directory ``out`` (default ``runs/<recipe name>``); returns metrics."""
    overrides = {"training.epochs": epochs, "training.device": device, "training.seed": seed,
                 "dataset.root": None if data_root is None else os.fspath(data_root)}
    recipe = load_recipe(recipe_path, overrides)
    out = Path(out if out is not None else Path("runs") / recipe["name"])
    mode = rd.prepare_out(out, resume, overwrite)
    if mode != "new":
        src = rd.partial_path(out) if mode == "resume-partial" else out
        saved = resolve_recipe(load_yaml(src / "config.yaml", "run config"), str(src / "config.yaml"))
        if seed is not None and seed != saved["training"]["seed"]:
            raise ConfigError(f"--seed {seed} differs from the run's seed {saved['training']['seed']} "
                              f"({src / 'config.yaml'}); drop --seed to resume")
        diff = _config_diff(recipe, saved)
        if diff:
            raise ConfigError(f"recipe {recipe_path} differs from the run being resumed ({src / 'config.yaml'}) "
                              f"in {', '.join(diff)}; resume with the same recipe")
        for section, key in _RESUME_FREE:
            if overrides.get(f"{section}.{key}") is not None:
                saved[section][key] = recipe[section][key]
        recipe = saved
    cfg = recipe["training"]
    dev = tr.resolve_device(cfg["device"], int(os.environ.get("LOCAL_RANK", "0")))
    info = dist_.setup(dev)
    try:
        return _train(recipe, out, mode, dev, info, echo)
    finally:
        dist_.teardown(info)


def _train(recipe, out: Path, mode: str, dev, info, echo: bool) -> dict:
    restore = apply_runtime(recipe["training"], dev)
    try:
        return _train_body(recipe, out, mode, dev, info, echo)
    finally:
        restore()


def _train_body(recipe, out: Path, mode: str, dev, info, echo: bool) -> dict:
    cfg, seed = recipe["training"], recipe["training"]["seed"]
    seed_everything(seed)
    dataset, model = preflight(recipe, dev)
    optimizer = tr.make_optimizer(model.parameters(), cfg)
    config_text = dump_recipe(recipe)
    run = rd.RunDir(out, write=info.is_main, echo=echo)
    pos = {"epoch": 0, "batch": 0, "global_step": 0}
    stats = {"loss_sum": 0.0, "correct": 0.0, "count": 0.0}
    history, train_time = [], 0.0
    if mode != "new":
        ckpt_dir = rd.partial_path(out) if mode == "resume-partial" else out
        ckpt = load_checkpoint(ckpt_dir / CHECKPOINT)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        pos = {k: ckpt[k] for k in pos}
        stats, history, train_time = dict(ckpt["epoch_stats"]), list(ckpt["history"]), ckpt["train_time_s"]
        if mode == "resume-finished" and pos["epoch"] >= cfg["epochs"]:
            metrics = read_metrics(out)
            if info.is_main and echo:
                print(f"run {out} is already complete ({pos['epoch']} epochs); "
                      f"test accuracy {metrics.get('test_accuracy', float('nan')):.4f}")
            return metrics
        dist_.barrier(info)
        if info.is_main and mode == "resume-finished":
            os.rename(out, rd.partial_path(out))
        set_rng_state(ckpt["rng"])
        run.reopen()
        run.write_text("config.yaml", config_text)
        run.log(f"resumed from {CHECKPOINT}: epoch {pos['epoch'] + 1}, batch {pos['batch']}, "
                f"step {pos['global_step']}")
    else:
        dist_.barrier(info)
        if info.is_main:
            rd.clear_partial(out)
        run.create(config_text)
        n_params = sum(p.numel() for p in model.parameters())
        run.log(f"neuroadapt train: recipe {recipe['name']}, dataset {recipe['dataset']['name']} "
                f"({dataset.num_samples('train')} train / {dataset.num_samples('test')} test), "
                f"{n_params} parameters, seed {seed}, device {dev}, world size {info.world_size}")
    dist_.barrier(info)
    net = dist_.wrap(model, info, dev)
    saved_once = mode != "new"

    def checkpoint(epoch, batch):
        nonlocal saved_once
        if info.is_main:
            save_checkpoint(run.file(CHECKPOINT), model=model, optimizer=optimizer, epoch=epoch, batch=batch,
                            global_step=pos["global_step"], epoch_stats=stats, history=history,
                            train_time_s=train_time + (time.perf_counter() - t_start), seed=seed,
                            world_size=info.world_size, config_text=config_text)
        saved_once = True

    try:
        for epoch in range(pos["epoch"], cfg["epochs"]):
            t_start = time.perf_counter()
            start_batch = pos["batch"] if epoch == pos["epoch"] else 0
            if start_batch == 0:
                stats = {"loss_sum": 0.0, "correct": 0.0, "count": 0.0}

            def on_step(done, n_batches, epoch=epoch):
                every = cfg["checkpoint_every"]
                if every and pos["global_step"] % every == 0 and done < n_batches:
                    checkpoint(epoch, done)

            progress = _progress(cfg, info, dataset, epoch, start_batch)
            try:
                tr.train_epoch(net, optimizer, dataset, cfg, seed, epoch, start_batch, stats, pos, dev, info,
                               on_step=on_step, progress=progress)
            finally:
                if progress is not None:
                    progress.close()
            train_loss, train_acc = stats["loss_sum"] / max(stats["count"], 1), stats["correct"] / max(stats["count"], 1)
            entry = {"epoch": epoch + 1, "train_loss": train_loss, "train_accuracy": train_acc}
            scored = (epoch + 1) % cfg["eval_every"] == 0 or epoch + 1 == cfg["epochs"]
            if scored:  # the last epoch is always scored: metrics.json reports it
                test = tr.evaluate(net, dataset, "test", cfg["eval_batch_size"], seed, dev, info)
                entry.update(test_loss=test["loss"], test_accuracy=test["accuracy"])
            entry.update(lr=tr.lr_at(cfg, epoch), time_s=time.perf_counter() - t_start)
            history.append(entry)
            checkpoint(epoch + 1, 0)
            train_time += time.perf_counter() - t_start
            pos.update(epoch=epoch + 1, batch=0)
            scores = f"test loss {test['loss']:.4f} acc {test['accuracy']:.4f}" if scored else "test not scored"
            run.log(f"epoch {epoch + 1}/{cfg['epochs']}: train loss {train_loss:.4f} acc {train_acc:.4f} | "
                    f"{scores} | {entry['time_s']:.1f}s")
    except BaseException as exc:
        if not saved_once:
            run.discard()
        elif isinstance(exc, Exception):
            run.log(f"stopped by {type(exc).__name__}: {exc}; the last checkpoint is kept in {run.path} "
                    f"(continue with --resume)", echo=False)
        raise
    return _finish(recipe, run, net, dataset, history, train_time, dev, info, pos)


def _progress(cfg, info, dataset, epoch, start_batch):
    if not (cfg["progress"] and info.is_main):
        return None
    from tqdm import tqdm

    total = math.ceil(dataset.num_samples("train") / cfg["batch_size"])
    return tqdm(total=total, initial=start_batch, desc=f"epoch {epoch + 1}/{cfg['epochs']}",
                leave=False, disable=None, dynamic_ncols=True)


def _finish(recipe, run, net, dataset, history, train_time, dev, info, pos) -> dict:
    cfg = recipe["training"]
    model = net.module if hasattr(net, "module") else net
    last = history[-1]
    metrics = {
        "task": recipe["task"],
        "dataset": recipe["dataset"]["name"],
        "model": recipe["name"],
        "test_accuracy": last["test_accuracy"],
        "test_loss": last["test_loss"],
        "train_accuracy": last["train_accuracy"],
        "train_loss": last["train_loss"],
        "epochs": len(history),
        "global_steps": pos["global_step"],
        "train_time_s": train_time,
        "history": history,
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "n_train": dataset.num_samples("train"),
        "n_test": dataset.num_samples("test"),
        "seed": cfg["seed"],
        "world_size": info.world_size,
        "device": str(dev),
        "torch_threads": torch.get_num_threads(),
        "architecture": {k: recipe["model"][k] for k in ("type", "hidden", "neuron", "recurrent", "readout", "n_memory",
                                                          "n_branches", "synapses_per_branch") if k in recipe["model"]},
        "versions": {"neuroadapt": __import__("neuroadapt").__version__, "torch": torch.__version__,
                     "python": platform.python_version()},
    }
    if info.is_main:
        if cfg["plots"]:
            from neuroadapt.engine.plots import write_plots

            sample = tr.record_sample(model, dataset, cfg["seed"], dev)
            write_plots(run.file("plots"), history, sample)
        run.write_json("metrics.json", metrics)
        run.log(f"done: test accuracy {metrics['test_accuracy']:.4f} after {len(history)} epochs, "
                f"{train_time:.1f}s of training")
        out = run.finish()
        if run.echo:
            print(f"run directory: {out}")
    dist_.barrier(info)
    return metrics


def quickstart(out=None, echo: bool = True) -> dict:
    """Train the quickstart recipe into ``out`` (default ``runs/quickstart``), replacing an earlier one."""
    recipe = find_recipe(QUICKSTART_RECIPE)
    t0 = time.perf_counter()
    metrics = train(recipe, out if out is not None else Path("runs") / "quickstart", overwrite=True, echo=echo)
    if echo:
        print(f"quickstart: test accuracy {metrics['test_accuracy']:.4f} "
              f"({metrics['n_test']} test utterances, speakers unseen in training), "
              f"{time.perf_counter() - t0:.1f}s in total")
    return metrics

