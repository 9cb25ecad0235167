"""``neuroadapt adapt RECIPE``: fully test-time adaptation benchmark (Source, BN, Tent, EATA, NHL).

For every seed: train the source model on clean data (or load it with ``--source-from``), then
for every setting (``continual``: one pass over all domains, never reset; ``reset``: the model
is reset to the source at every new corruption) and every method, stream the corrupted domains
in batches (adapt, then predict each batch) and count errors. Writes to the run directory
``config.yaml``, ``source_seed<S>.pt``, ``metrics.json`` (``task``, ``dataset``, ``model``,
per-corruption ``error`` per setting and method averaged over seeds, ``error_std``,
``mean_error``, ``mean_error_std``, ``per_seed``), ``table.md`` and ``plots/errors.png``.
"""
from __future__ import annotations

import copy
import math
import time
from pathlib import Path

from neuroadapt._io import atomic_path
from neuroadapt.errors import CheckpointError, ConfigError

__all__ = ["add_parser", "run_adapt", "load_adapt_recipe", "train_source", "run_stream", "SETTINGS"]

SETTINGS = ("continual", "reset")
_SECTIONS = {"name", "task", "description", "dataset", "model", "source", "adapt", "seeds", "threads", "device"}
_SOURCE_KEYS = {"epochs": 15, "batch_size": 64, "lr": 3e-3, "weight_decay": 0.0}
_ADAPT_KEYS = {"settings": list(SETTINGS), "batch_size": 64, "methods": None, "fisher_samples": 2000}


def load_adapt_recipe(path) -> dict:
    from neuroadapt.engine.config import find_recipe, load_yaml

    p = find_recipe(path, "adapt")  # adaptation recipes live in models/adapt/
    raw = load_yaml(p)
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: a recipe is a YAML mapping")
    unknown = set(raw) - _SECTIONS
    if unknown:
        raise ConfigError(f"{p}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_SECTIONS)}")
    for sec in ("dataset", "model", "adapt"):
        if not isinstance(raw.get(sec), dict):
            raise ConfigError(f"{p}: section {sec!r} (a mapping) is required")
    src = {**_SOURCE_KEYS, **(raw.get("source") or {})}
    ad = {**_ADAPT_KEYS, **raw["adapt"]}
    for sec, have, allowed in (("source", src, _SOURCE_KEYS), ("adapt", ad, _ADAPT_KEYS)):
        extra = set(have) - set(allowed)
        if extra:
            raise ConfigError(f"{p}: unknown {sec} key(s) {sorted(extra)}; allowed: {sorted(allowed)}")
    if not isinstance(ad["methods"], dict) or not ad["methods"]:
        raise ConfigError(f"{p}: adapt.methods must map method names to their options, e.g. {{tent: {{lr: 0.001}}}}")
    bad = [s for s in ad["settings"] if s not in SETTINGS]
    if bad:
        raise ConfigError(f"{p}: adapt.settings: unknown {bad}; use {SETTINGS}")
    if int(ad["batch_size"]) < 2:
        raise ConfigError(f"{p}: adapt.batch_size must be >= 2 (BN/Tent/EATA/NHL normalise with test-batch "
                          f"statistics), got {ad['batch_size']}")
    return {"name": raw.get("name", p.stem), "task": "test_time_adaptation", "dataset": raw["dataset"],
            "model": raw["model"], "source": src, "adapt": ad, "seeds": list(raw.get("seeds", [0])),
            "threads": int(raw.get("threads", 1)), "device": raw.get("device", "cpu"),
            "description": raw.get("description", "")}


def _batches(n: int, batch_size: int, gen):
    """A shuffled split of ``range(n)`` into batches; a last batch of one joins the previous one."""
    import torch

    perm = torch.randperm(n, generator=gen)
    chunks = list(perm.split(batch_size))
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        last = chunks.pop()
        chunks[-1] = torch.cat([chunks[-1], last])
    return chunks


def train_source(model, x, y, spec: dict, seed: int, device, progress: bool = True):
    import torch
    from tqdm import tqdm

    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=float(spec["lr"]), weight_decay=float(spec["weight_decay"]))
    epochs = int(spec["epochs"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs))
    model.to(device).train()
    for _ in tqdm(range(epochs), desc=f"source seed {seed}", disable=not progress, leave=False):
        for idx in _batches(len(x), int(spec["batch_size"]), gen):
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x[idx].to(device)), y[idx].to(device)).backward()
            opt.step()
        sched.step()
    model.eval()
    return model


def error_of(model, x, y, device, batch_size: int = 256) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        return _error(model, x, y, device, batch_size)


def _error(model, x, y, device, batch_size):
    wrong = sum(int((model(x[i:i + batch_size].to(device)).argmax(1).cpu() != y[i:i + batch_size]).sum())
                for i in range(0, len(x), batch_size))
    return 100.0 * wrong / len(x)


def run_stream(method, domains, setting: str, batch_size: int, seed: int, device, bar=None) -> dict:
    """Per-domain error (%) of ``method`` on the stream ``domains`` = [(name, x, y)] in ``setting``."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, x, y in domains:
        if setting == "reset":
            method.reset()
        wrong = 0
        for idx in _batches(len(x), batch_size, gen):
            pred = method(x[idx].to(device)).argmax(1).cpu()
            wrong += int((pred != y[idx]).sum())
            if bar is not None:
                bar.update(1)
        out[name] = 100.0 * wrong / len(x)
    return out


def _method(name: str, model, opts: dict, data, recipe):
    from neuroadapt.learn.tta import make_method

    opts = dict(opts or {})
    if name == "eata" and "fisher_data" not in opts:
        opts["fisher_data"] = data.val_x[: int(recipe["adapt"]["fisher_samples"])].to(next(model.parameters()).device)
    return make_method(name, model, **opts)


def run_adapt(recipe: dict, out, seeds=None, settings=None, methods=None, split: str = "test",
              source_from=None, data_root=None, progress: bool = True, echo: bool = True) -> dict:
    import numpy as np
    import torch
    import yaml
    from tqdm import tqdm

    from neuroadapt.engine.adapt_data import load_adapt_data
    from neuroadapt.engine.adapt_report import summarise, table_text, write_plot
    from neuroadapt.engine.rundir import RunDir
    from neuroadapt.learn.tta import METHODS
    from neuroadapt.learn.tta.models import build_model

    seeds = list(recipe["seeds"] if seeds is None else seeds)
    settings = list(recipe["adapt"]["settings"] if settings is None else settings)
    all_methods = recipe["adapt"]["methods"]
    methods = list(all_methods if methods is None else methods)
    for m in methods:
        if m not in METHODS:
            raise ConfigError(f"unknown method {m!r}; choose from {', '.join(METHODS)}")
    for s in settings:
        if s not in SETTINGS:
            raise ConfigError(f"unknown setting {s!r}; choose from {SETTINGS}")
    ds = dict(recipe["dataset"], **({"root": data_root} if data_root else {}))
    from neuroadapt.engine.rundir import clear_partial, prepare_out
    from neuroadapt.engine.trainer import resolve_device

    torch.set_num_threads(max(1, recipe["threads"]))
    device = resolve_device(recipe["device"])
    out = Path(out)
    prepare_out(out, resume=False, overwrite=True)  # a finished run is replaced; any other folder is refused
    cache = out.parent / ".cache"
    data = load_adapt_data(ds, split=split, cache=cache)
    bs = int(recipe["adapt"]["batch_size"])
    run = RunDir(out, echo=echo)
    clear_partial(out)
    run.create(yaml.safe_dump({**recipe, "run": {"seeds": seeds, "settings": settings, "methods": methods,
                                                 "split": split}}, sort_keys=False))
    try:
        t0 = time.time()
        run.log(f"{recipe['name']}: {data.name} severity {data.severity} ({split} stream: {len(data.domains)} domains "
                f"x {len(data.domains[0][1])} images), model {recipe['model'].get('type')}, seeds {seeds}")
        per_seed, clean = {}, {}
        n_batches = sum(math.ceil(len(x) / bs) for _, x, _ in data.domains)
        for seed in seeds:
            torch.manual_seed(seed)
            model = build_model({**recipe["model"], "in_channels": data.in_channels})
            ckpt = f"source_seed{seed}.pt"
            if source_from is not None:
                path = Path(source_from) / ckpt
                if not path.is_file():
                    raise CheckpointError(f"--source-from: {path} not found (a run of this recipe writes {ckpt})")
                try:
                    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
                except RuntimeError as exc:
                    raise CheckpointError(f"{path} does not fit the recipe's model: {exc}") from None
                model.to(device)
            else:
                train_source(model, data.train_x, data.train_y, recipe["source"], seed, device, progress)
            with atomic_path(run.file(ckpt)) as tmp:
                torch.save(model.state_dict(), tmp)
            clean[seed] = error_of(model, data.clean_x, data.clean_y, device)
            run.log(f"seed {seed}: source model clean error {clean[seed]:.2f} %")
            for setting in settings:
                for name in methods:
                    torch.manual_seed(seed)
                    method = _method(name, copy.deepcopy(model), all_methods.get(name), data, recipe)
                    with tqdm(total=n_batches, desc=f"seed {seed} {setting} {name}", disable=not progress,
                              leave=False) as bar:
                        errs = run_stream(method, data.domains, setting, bs, seed, device, bar)
                    per_seed.setdefault(setting, {}).setdefault(name, {})[seed] = errs
                    run.log(f"seed {seed} {setting:9s} {name:6s} mean error {np.mean(list(errs.values())):6.2f} %",
                            echo=False)
        metrics = summarise(per_seed, [d[0] for d in data.domains])
        metrics = {"task": "test_time_adaptation", "dataset": data.name, "model": recipe["model"].get("type"),
                   "recipe": recipe["name"], "split": split, "severity": data.severity, "seeds": seeds,
                   "batch_size": bs, "source_clean_error": clean, **metrics,
                   "seconds": round(time.time() - t0, 1)}
        text = table_text(metrics)
        run.log(text)
        run.write_text("table.md", text + "\n")
        run.write_json("metrics.json", metrics)
        write_plot(run.file("plots") / "errors.png", metrics)
    except BaseException:
        run.discard()
        raise
    run.finish()
    return metrics


def _cmd_adapt(args) -> int:
    recipe = load_adapt_recipe(args.recipe)
    if args.threads is not None:
        recipe["threads"] = args.threads
    if args.device is not None:
        recipe["device"] = args.device
    from neuroadapt._paths import project_folder

    out = args.out or str(project_folder("models").parent / "runs" / f"adapt-{recipe['name']}")
    metrics = run_adapt(recipe, out, seeds=args.seeds, settings=args.settings, methods=args.methods,
                        split=args.split, source_from=args.source_from, data_root=args.data_root,
                        progress=not args.no_progress)
    print(f"wrote {out} (metrics.json, table.md, plots/errors.png) in {metrics['seconds']} s")
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("adapt", help="test-time adaptation benchmark: Source, BN, Tent, EATA, NHL on corrupted domains")
    p.add_argument("recipe", help="adaptation recipe (.yaml path or a name in models/adapt/, e.g. digits_c_cnn)")
    p.add_argument("--out", default=None, help="run directory (default runs/adapt-<recipe name>; replaced when done)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default: the recipe's)")
    p.add_argument("--settings", nargs="+", default=None, choices=SETTINGS, help="continual and/or reset")
    p.add_argument("--methods", nargs="+", default=None, help="subset of the recipe's methods")
    p.add_argument("--split", default="test", choices=("test", "val"),
                   help="'val': the stream built from validation images (for choosing hyperparameters)")
    p.add_argument("--source-from", default=None, help="load source_seed<S>.pt from this earlier adapt run")
    p.add_argument("--data-root", default=None, help="dataset.root (CIFAR-10-C folder, or a digits .npz)")
    p.add_argument("--device", default=None, help="cpu, cuda or auto (default: the recipe's)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: the recipe's)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    p.set_defaults(func=_cmd_adapt)
