"""Choosing NHL's options on the validation stream only, averaged over source and corruption seeds.

For the digits-C recipe of one model (``digits_c_cnn`` or ``digits_c_snn``) this runs BN, Tent
(the recipe's settings) and every NHL variant of ``VARIANTS`` (the recipe's ``nhl`` line plus
the variant's overrides) through the **validation** stream (``split="val"``: the validation
images, never the test images) in the **continual** setting, for every source seed (the source
models of an earlier ``neuroadapt adapt`` run, ``--source-from``, or trained here) and every
corruption seed ``c`` (``dataset.corruption_seed = c``; the validation stream then uses the
corruption seed ``1000 + c``, the test stream uses ``0``). Writes

* ``nhl_val_sweep_<model>.json``: per variant, the mean error over all (corruption seed, source
  seed) pairs, the std of the per-pair means, the per-pair means, the per-corruption means,
  the number of pairs on which it beats Tent, and (NHL) the shifts detected per pass;
* ``nhl_val_sweep_<model>.png``: mean error per variant.

Usage: ``PYTHONPATH=$PWD python sims/nhl_val_sweep.py --model cnn --source-from RUN_DIR
--domain-images 719 --only tent nhl ...`` (``neuroadapt sim nhl_val_sweep`` runs the defaults:
CNN, source models trained here, every variant, the validation stream as it is; ~10 min).
"""
from __future__ import annotations

import argparse
import copy
import io
import os
import sys
import time

import numpy as np

#: label -> (method, options over the recipe's options for that method). Every variant tried.
VARIANTS = {
    "bn": ("bn", {}),
    "tent": ("tent", {}),
    "eata": ("eata", {}),
    "nhl": ("nhl", {}),                                     # the recipe line before this sweep
    "nhl no-hebb": ("nhl", {"hebbian": False}),
    "nhl decay k=5": ("nhl", {"hebb_decay": 5}),
    "nhl decay k=20": ("nhl", {"hebb_decay": 20}),
    "nhl drift 0.05": ("nhl", {"max_drift": 0.05}),
    "nhl drift 0.1": ("nhl", {"max_drift": 0.1}),
    "nhl drift 0.2": ("nhl", {"max_drift": 0.2}),
    "nhl shift 0.15": ("nhl", {"shift_reset": 0.15}),
    "nhl shift 0.25": ("nhl", {"shift_reset": 0.25}),
    "nhl shift 0.4": ("nhl", {"shift_reset": 0.4}),
    "nhl fb 0.4": ("nhl", {"feedback_margin": 0.4}),
    "nhl fb 0.4 w": ("nhl", {"feedback_margin": 0.4, "feedback_weight": True}),
    "nhl fb 0.6 w": ("nhl", {"feedback_margin": 0.6, "feedback_weight": True}),
    # round 2 (test-length validation domains)
    "nhl drift 0.1 fb 0.6 w": ("nhl", {"max_drift": 0.1, "feedback_margin": 0.6, "feedback_weight": True}),
    "nhl shift 0.4 fb 0.6 w": ("nhl", {"shift_reset": 0.4, "feedback_margin": 0.6, "feedback_weight": True}),
    "nhl lr 3e-4": ("nhl", {"lr": 3e-4}),
    "nhl decay k=20 lr 3e-4": ("nhl", {"hebb_decay": 20, "lr": 3e-4}),
}


def _lengthen(data, rec, cs: int, n: int, cache) -> list:
    """Every domain of ``data`` made ``n`` images long from more corruption seeds of the same images."""
    import torch

    from neuroadapt.engine.adapt_data import load_adapt_data

    parts, j = [data.domains], 1
    while len(parts) * len(data.domains[0][1]) < n:
        parts.append(load_adapt_data({**rec["dataset"], "corruption_seed": cs + 3 * j}, "val", cache=cache).domains)
        j += 1
    out = []
    for k, (name, _, _) in enumerate(data.domains):
        x = torch.cat([p[k][1] for p in parts])
        y = torch.cat([p[k][2] for p in parts])
        idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(1000 + cs))[:n]
        out.append((name, x[idx], y[idx]))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="nhl_val_sweep", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=("cnn", "snn"), default="cnn")
    ap.add_argument("--out", default=os.path.join("out", "sims", "nhl_val_sweep"))
    ap.add_argument("--source-from", default=None, help="folder with source_seed<S>.pt (an adapt run)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="source seeds")
    ap.add_argument("--corruption-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--only", nargs="+", default=None, help="labels of VARIANTS to run (default: all)")
    ap.add_argument("--tag", default="", help="suffix of the output file names")
    ap.add_argument("--domain-images", type=int, default=0,
                    help="make every validation domain this long (0: as is, 269 images): the validation "
                         "images under corruption seeds c, c+3, c+6, ... concatenated, then the first N of a "
                         "fixed shuffle (719 = the test stream's length per domain)")
    args = ap.parse_args(argv)

    import torch

    from neuroadapt._io import atomic_write, atomic_write_json
    from neuroadapt.engine.adapt import _method, load_adapt_recipe, run_stream, train_source
    from neuroadapt.engine.adapt_data import load_adapt_data
    from neuroadapt.errors import ConfigError
    from neuroadapt.learn.tta.models import build_model

    torch.set_num_threads(1)
    labels = list(VARIANTS if args.only is None else args.only)
    bad = [lb for lb in labels if lb not in VARIANTS]
    if bad:
        raise ConfigError(f"nhl_val_sweep: unknown variant(s) {bad}; known: {list(VARIANTS)}")
    if "tent" not in labels:
        labels.insert(0, "tent")
    rec = load_adapt_recipe(f"digits_c_{args.model}")
    os.makedirs(args.out, exist_ok=True)
    bs = int(rec["adapt"]["batch_size"])
    models = {}
    res = {lb: {} for lb in labels}  # label -> {"c<cs>/s<seed>": {corruption: error}}
    shifts = {lb: [] for lb in labels}
    t0 = time.time()
    for cs in args.corruption_seeds:
        data = load_adapt_data({**rec["dataset"], "corruption_seed": cs}, "val",
                               cache=os.path.join(args.out, ".cache"))
        if args.domain_images > 0:
            data.domains = _lengthen(data, rec, cs, args.domain_images, os.path.join(args.out, ".cache"))
        for seed in args.seeds:
            if seed not in models:
                torch.manual_seed(seed)
                model = build_model({**rec["model"], "in_channels": data.in_channels})
                if args.source_from:
                    model.load_state_dict(torch.load(os.path.join(args.source_from, f"source_seed{seed}.pt"),
                                                     map_location="cpu", weights_only=True))
                else:
                    train_source(model, data.train_x, data.train_y, rec["source"], seed, "cpu", progress=False)
                models[seed] = model.eval()
            for lb in labels:
                name, over = VARIANTS[lb]
                opts = {**(rec["adapt"]["methods"].get(name) or {}), **over}
                torch.manual_seed(seed)
                meth = _method(name, copy.deepcopy(models[seed]), opts, data, rec)
                errs = run_stream(meth, data.domains, "continual", bs, seed, "cpu")
                res[lb][f"c{cs}/s{seed}"] = errs
                if name == "nhl":
                    shifts[lb].append(meth.n_shifts)
            line = "  ".join(f"{lb}={np.mean(list(res[lb][f'c{cs}/s{seed}'].values())):.2f}" for lb in labels)
            print(f"[{time.time() - t0:6.0f} s] corruption seed {cs} source seed {seed}: {line}", flush=True)

    summary = {"model": args.model, "recipe": rec["name"], "split": "val", "setting": "continual",
               "source_seeds": args.seeds, "corruption_seeds": args.corruption_seeds,
               "val_corruption_seeds_used": [1000 + c for c in args.corruption_seeds],
               "domain_images": args.domain_images or len(data.domains[0][1]),
               "seconds": round(time.time() - t0, 1), "variants": {}}
    tent_pairs = {k: float(np.mean(list(v.values()))) for k, v in res["tent"].items()}
    for lb in labels:
        name, over = VARIANTS[lb]
        pairs = {k: float(np.mean(list(v.values()))) for k, v in res[lb].items()}
        doms = list(next(iter(res[lb].values())))
        summary["variants"][lb] = {
            "method": name, "overrides": over, "mean_error": round(float(np.mean(list(pairs.values()))), 3),
            "std_of_pairs": round(float(np.std(list(pairs.values()))), 3),
            "pairs_below_tent": int(sum(pairs[k] < tent_pairs[k] for k in pairs)), "n_pairs": len(pairs),
            "per_pair": {k: round(v, 3) for k, v in pairs.items()},
            "per_corruption": {d: round(float(np.mean([res[lb][k][d] for k in res[lb]])), 2) for d in doms},
            **({"shifts_detected_per_pass": shifts[lb]} if shifts[lb] else {})}
        v = summary["variants"][lb]
        print(f"{lb:22s} {v['mean_error']:7.3f} ± {v['std_of_pairs']:.3f}  below tent {v['pairs_below_tent']}/"
              f"{v['n_pairs']}" + (f"  shifts {shifts[lb]}" if shifts[lb] and over.get("shift_reset") else ""))

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.3 * len(labels) + 1))
    means = [summary["variants"][lb]["mean_error"] for lb in labels]
    ax.barh(range(len(labels)), means, color=["C0" if VARIANTS[lb][0] == "nhl" else "C7" for lb in labels])
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlim(min(means) - 0.5, max(means) + 0.3)
    ax.axvline(summary["variants"]["tent"]["mean_error"], color="k", lw=0.8, ls="--")
    ax.set_xlabel(f"validation mean error % ({args.model}, continual, {len(tent_pairs)} seed pairs)")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    stem = os.path.join(args.out, f"nhl_val_sweep_{args.model}{args.tag}")
    atomic_write(stem + ".png", lambda f: f.write(buf.getvalue()))
    atomic_write_json(stem + ".json", summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
