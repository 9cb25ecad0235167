"""``neuroadapt continual RECIPE``: HLOP and baselines over a task sequence, in one command.

Recipes live in ``models/continual/`` (found by name, e.g. ``neuroadapt continual permuted_digits``,
or by path). A continual recipe is a training recipe (``dataset``, ``model``, ``training``; see
docs/training.md) with ``task: continual`` and three more sections:

* ``continual``: ``sequence`` (permuted | split), ``n_tasks``, ``classes_per_task`` (split),
  ``val_fraction``, ``eval_split`` (val while tuning, test for the reported numbers),
  ``methods`` (any of finetune, ewc, hlop, multitask), ``multitask_epochs``;
* ``hlop``: the options of :class:`neuroadapt.learn.hlop.HLOP` plus the subspace neurons per
  layer -- ``initial`` (task 0) and ``increment`` (each later task), each a mapping
  ``{layer name: count}`` (or one count for every protected layer);
* ``ewc``: ``lambda`` and ``samples`` (samples for the diagonal Fisher).

Every method starts from the same initial weights (``training.seed``) and sees the same batches.
The run directory gets ``config.yaml``, ``metrics.json`` (``task``, ``dataset``, ``model``,
``acc`` and ``bwt`` per method, the accuracy matrices), ``plots/accuracy_matrix.png``,
``plots/task_accuracy.png`` and ``log.txt``.
"""
from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np

from neuroadapt.errors import CheckpointError, ConfigError

__all__ = ["load_continual_recipe", "run_continual", "add_parser", "METHODS"]

METHODS = ("finetune", "ewc", "hlop", "multitask")
_NUM = (int, float)

CONTINUAL_SCHEMA = {
    "sequence": (str, "permuted", "permuted (one shared head) or split (classes per task, task heads)",
                 ("permuted", "split")),
    "n_tasks": (int, 10, "number of tasks"),
    "classes_per_task": (int, 2, "split: classes per task"),
    "val_fraction": (_NUM, 0.15, "part of the training split held out for tuning"),
    "eval_split": (str, "test", "split the accuracy matrix is measured on", ("val", "test")),
    "methods": (list, list(METHODS), "methods run, in order"),
    "multitask_epochs": ((int, type(None)), None, "epochs of joint training (null: training.epochs)"),
    "lr_later": ((_NUM, type(None)), None, "learning rate of every task after the first, all sequential "
                                           "methods (the reference's -lr_continual; null: training.lr)"),
}
HLOP_SCHEMA = {
    "lr": ((_NUM, dict), 0.01, "Hebbian rate (one number, or {layer: rate})"),
    "momentum": (_NUM, 0.9, "momentum of the Hebbian update"),
    "iterations": (int, 5, "Oja updates per mini-batch"),
    "clamp": ((_NUM, type(None)), 10.0, "clip of the Hebbian increment"),
    "proj_type": (str, "weight", "weight or input", ("weight", "input")),
    "initial": ((int, dict), 40, "subspace neurons at task 0 ({layer: n} or one n)"),
    "increment": ((int, dict, list), 20, "subspace neurons added at every later task (or a list: one "
                                         "entry per later task)"),
    "exclude": (list, [], "modules not protected (task heads)"),
    "max_rows": ((int, type(None)), None, "at most this many presynaptic rows per Hebbian update"),
    "hebbian_input": (str, "steps", "steps (every time step a row) or rate (firing rate over T)", ("steps", "rate")),
}
EWC_SCHEMA = {
    "lambda": (_NUM, 1000.0, "penalty strength"),
    "samples": (int, 200, "samples per task for the diagonal Fisher"),
}
EXTRA = {"continual": CONTINUAL_SCHEMA, "hlop": HLOP_SCHEMA, "ewc": EWC_SCHEMA}


def load_continual_recipe(name_or_path, overrides: dict | None = None) -> dict:
    from neuroadapt.engine import config as cfgmod

    path = cfgmod.find_recipe(name_or_path, "continual")  # continual recipes live in models/continual/
    raw = cfgmod.load_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a recipe must be a YAML mapping")
    raw = copy.deepcopy(raw)
    if raw.get("task", "continual") != "continual":
        raise ConfigError(f"{path}: task is {raw.get('task')!r}; `neuroadapt continual` needs task: continual "
                          "(use `neuroadapt train` for other recipes)")
    for dotted, value in (overrides or {}).items():
        if value is not None:
            section, _, key = dotted.partition(".")
            raw.setdefault(section, {})[key] = value
    extra = {k: raw.pop(k, None) for k in EXTRA}
    raw["task"] = "classification"
    recipe = cfgmod.resolve_recipe(raw, where=str(path), default_name=path.stem)
    recipe["task"] = "continual"
    for section, schema in EXTRA.items():
        recipe[section] = cfgmod._resolve_section(extra[section], schema, str(path), section)
    methods = recipe["continual"]["methods"]
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ConfigError(f"{path}: continual.methods: unknown {bad}; choose from {', '.join(METHODS)}")
    if "hlop" in methods and recipe["training"]["optimizer"] != "sgd":
        raise ConfigError(f"{path}: HLOP needs training.optimizer: sgd (Adam's per-weight scaling moves the update "
                          "out of the projected space and breaks the protection)")
    if "hlop" in methods and recipe["training"]["weight_decay"]:
        raise ConfigError(f"{path}: HLOP needs training.weight_decay: 0 (decay shrinks weights along old directions)")
    return recipe


def _counts(spec, names) -> dict:
    if isinstance(spec, dict):
        unknown = set(spec) - set(names)
        if unknown:
            raise ConfigError(f"hlop: no protected layer(s) {sorted(unknown)}; protected: {sorted(names)}")
        return {n: int(spec.get(n, 0)) for n in names}
    return {n: int(spec) for n in names}


def run_method(method: str, recipe: dict, seq, log=print, progress=None) -> dict:
    """Train ``method`` over the sequence; the accuracy matrix on ``continual.eval_split``."""
    import torch

    from neuroadapt.engine.continual_tasks import EWC, acc_bwt, evaluate_task, train_task
    from neuroadapt.engine.trainer import make_optimizer
    from neuroadapt.engine.models import build_model

    train, cont, seed = recipe["training"], recipe["continual"], recipe["training"]["seed"]
    split, n = cont["eval_split"], seq.n_tasks
    torch.manual_seed(seed)
    model = build_model(recipe["model"], seq.dataset.n_inputs, seq.n_classes)
    start = time.perf_counter()
    if method == "multitask":
        epochs = cont["multitask_epochs"] or train["epochs"]
        opt = make_optimizer([p for p in model.parameters() if p.requires_grad], train)
        train_task(model, opt, seq, list(range(n)), epochs, train["batch_size"], seed, progress=progress)
        row = [evaluate_task(model, seq, split, t, train["eval_batch_size"], seed) for t in range(n)]
        acc = float(np.mean(row))
        log(f"multitask: ACC {100 * acc:.2f} (joint training, {epochs} epochs over all tasks)")
        return {"acc": acc, "bwt": None, "matrix": [row], "seconds": time.perf_counter() - start}
    hlop = ewc = None
    if method == "hlop":
        from neuroadapt.learn.hlop import HLOP

        hc = recipe["hlop"]
        hlop = HLOP(model, exclude=hc["exclude"], lr=hc["lr"], momentum=hc["momentum"], iterations=hc["iterations"],
                    clamp=hc["clamp"], proj_type=hc["proj_type"], max_rows=hc["max_rows"], seed=seed,
                    hebbian_input=hc["hebbian_input"])
        initial = _counts(hc["initial"], hlop.subspaces)
        inc = hc["increment"]
        if isinstance(inc, list) and len(inc) < n - 1:
            raise ConfigError(f"hlop.increment: a list needs one entry per later task ({n - 1}), got {len(inc)}")
        increments = [_counts(inc[t - 1] if isinstance(inc, list) else inc, hlop.subspaces) for t in range(1, n)]
    elif method == "ewc":
        ewc = EWC(model, recipe["ewc"]["lambda"], recipe["ewc"]["samples"])
    matrix = np.zeros((n, n))
    for t in range(n):
        if hlop is not None:
            hlop.begin_task(initial if t == 0 else increments[t - 1])
        lr = train["lr"] if t == 0 or cont["lr_later"] is None else cont["lr_later"]
        opt = make_optimizer([p for p in model.parameters() if p.requires_grad], {**train, "lr": lr})
        train_task(model, opt, seq, [t], train["epochs"], train["batch_size"], seed * 131 + t,
                   penalty=ewc.penalty if ewc is not None and t > 0 else None,
                   after_backward=hlop.step if hlop is not None else None, progress=progress)
        if hlop is not None:
            hlop.end_task()
        if ewc is not None:
            ewc.end_task(seq, t, seed * 17 + t)
        matrix[t] = [evaluate_task(model, seq, split, j, train["eval_batch_size"], seed) for j in range(n)]
        log(f"{method}: after task {t + 1}/{n}: " + " ".join(f"{100 * a:.1f}" for a in matrix[t, : t + 1]))
    acc, bwt = acc_bwt(matrix)
    out = {"acc": acc, "bwt": bwt, "matrix": matrix.tolist(), "seconds": time.perf_counter() - start}
    if hlop is not None:
        out["subspace"] = {k: v["total"] for k, v in hlop.sizes().items()}
    log(f"{method}: ACC {100 * acc:.2f}  BWT {100 * bwt:+.2f}")
    return out


def write_continual_plots(plot_dir, results: dict, n_tasks: int) -> list:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from neuroadapt.engine.plots import _save

    plot_dir = Path(plot_dir)
    seq_methods = [m for m in results if results[m]["bwt"] is not None]
    written = []
    if seq_methods:
        fig, axes = plt.subplots(1, len(seq_methods), figsize=(3.4 * len(seq_methods), 3.2), squeeze=False)
        for ax, m in zip(axes[0], seq_methods):
            a = 100 * np.asarray(results[m]["matrix"])
            shown = np.where(np.tril(np.ones_like(a)) > 0, a, np.nan)
            im = ax.imshow(shown, vmin=0, vmax=100, cmap="viridis")
            ax.set_title(f"{m}: ACC {100 * results[m]['acc']:.1f}, BWT {100 * results[m]['bwt']:+.1f}", fontsize=8)
            ticks = np.arange(0, n_tasks, max(1, n_tasks // 5))
            ax.set_xticks(ticks, [str(i + 1) for i in ticks])
            ax.set_yticks(ticks, [str(i + 1) for i in ticks])
            ax.set_xlabel("evaluated task")
            ax.set_ylabel("after training task")
        fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="accuracy (%)")
        _save(fig, plot_dir / "accuracy_matrix.png")
        plt.close(fig)
        written.append(plot_dir / "accuracy_matrix.png")
        fig, axes = plt.subplots(1, len(seq_methods), figsize=(3.4 * len(seq_methods), 3.0), squeeze=False, sharey=True)
        for ax, m in zip(axes[0], seq_methods):
            a = 100 * np.asarray(results[m]["matrix"])
            for j in range(n_tasks):
                ax.plot(np.arange(j, n_tasks) + 1, a[j:, j], "o-", ms=2, lw=1)
            if "multitask" in results:
                ax.axhline(100 * results["multitask"]["acc"], color="k", ls="--", lw=1, label="multitask ACC")
                ax.legend(fontsize=7, loc="lower left")
            ax.set_title(m, fontsize=9)
            ax.set_xlabel("tasks trained")
            ax.grid(alpha=0.3)
        axes[0][0].set_ylabel("accuracy on each task (%)")
        _save(fig, plot_dir / "task_accuracy.png")
        plt.close(fig)
        written.append(plot_dir / "task_accuracy.png")
    return written


def run_continual(recipe: dict, out, methods=None, echo: bool = True) -> dict:
    """Run every method of the recipe; write the run directory ``out``; return metrics."""
    import torch

    from neuroadapt.engine.runtime import apply_runtime

    cont, train = recipe["continual"], recipe["training"]
    methods = list(methods or cont["methods"])
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ConfigError(f"--methods: unknown {bad}; choose from {', '.join(METHODS)}")
    restore = apply_runtime(train, torch.device("cpu"))  # threads, determinism; undone on return
    try:
        return _run_continual(recipe, methods, out, echo)
    finally:
        restore()


def _run_continual(recipe: dict, methods: list, out, echo: bool) -> dict:
    from neuroadapt.engine.config import dump_recipe
    from neuroadapt.engine.continual_tasks import TaskSequence
    from neuroadapt.engine.rundir import RunDir, partial_path
    from neuroadapt.engine.runtime import build_dataset

    cont, train = recipe["continual"], recipe["training"]
    dataset = build_dataset(recipe)
    seq = TaskSequence(dataset, cont["sequence"], cont["n_tasks"], cont["classes_per_task"],
                       cont["val_fraction"], seed=train["seed"])
    out = Path(out)
    if partial_path(out).exists():
        raise CheckpointError(f"an unfinished run exists at {partial_path(out)}; remove it or choose another --out")
    run = RunDir(out, echo=echo)
    run.create(dump_recipe(recipe))
    try:
        steps = 0
        for m in methods:
            tasks = range(seq.n_tasks)
            per_epoch = sum(-(-seq.num_samples("train", t) // train["batch_size"]) for t in tasks)
            steps += per_epoch * ((cont["multitask_epochs"] or train["epochs"]) if m == "multitask" else train["epochs"])
        progress = None
        if train["progress"]:
            from tqdm import tqdm

            progress = tqdm(total=steps, desc="continual", unit="batch", leave=False, mininterval=1.0)
        log = (lambda s: (progress.write(s) if progress is not None else print(s), run.log(s, echo=False)))
        log(f"{recipe['name']}: {seq.n_tasks} {cont['sequence']} tasks of {dataset!r}; evaluated on "
            f"the {cont['eval_split']} split; methods {', '.join(methods)}")
        results = {m: run_method(m, recipe, seq, log=log, progress=progress) for m in methods}
        if progress is not None:
            progress.close()
        metrics = {"task": "continual", "dataset": recipe["dataset"]["name"], "model": recipe["name"],
                   "sequence": cont["sequence"], "n_tasks": seq.n_tasks, "eval_split": cont["eval_split"],
                   "acc": {m: r["acc"] for m, r in results.items()},
                   "bwt": {m: r["bwt"] for m, r in results.items()},
                   "methods": results}
        run.write_json("metrics.json", metrics)
        if train["plots"]:
            write_continual_plots(run.path / "plots", results, seq.n_tasks)
        table = "\n".join(f"  {m:10s} ACC {100 * r['acc']:6.2f}   BWT "
                          + ("   n/a" if r["bwt"] is None else f"{100 * r['bwt']:+6.2f}") + f"   ({r['seconds']:.0f} s)"
                          for m, r in results.items())
        run.log(f"results ({cont['eval_split']} split, %):\n{table}", echo=False)
        run.finish()
    except BaseException:
        run.discard()
        raise
    if echo:
        print(f"results ({cont['eval_split']} split, %):\n{table}\nrun directory: {out}")
    return metrics


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("continual", help="HLOP and baselines (fine-tuning, EWC, multitask) over a task "
                                                 "sequence: accuracy matrix, ACC and BWT")
    p.add_argument("recipe", help="continual recipe (.yaml path or name in models/)")
    p.add_argument("--out", default=None, help="run directory (default runs/<recipe name>; replaced when done)")
    p.add_argument("--seed", type=int, default=None, help="override training.seed")
    p.add_argument("--methods", nargs="+", default=None, metavar="M", help=f"subset of {', '.join(METHODS)}")
    p.add_argument("--epochs", type=int, default=None, help="override training.epochs (per task)")
    p.add_argument("--eval-split", default=None, choices=("val", "test"), help="override continual.eval_split")
    p.add_argument("--data-root", default=None, help="local data path for the recipe's data set")
    p.set_defaults(func=_cmd_continual)


def _cmd_continual(args) -> int:
    recipe = load_continual_recipe(args.recipe, {"training.seed": args.seed, "training.epochs": args.epochs,
                                                 "continual.eval_split": args.eval_split,
                                                 "dataset.root": args.data_root})
    run_continual(recipe, args.out or Path("runs") / recipe["name"], methods=args.methods)
    return 0
