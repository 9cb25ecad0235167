"""SoftHebb soft-WTA learning: a Brian2 network with lateral inhibition against the torch rule.

Three neurons with random initial weights see 300 two-dimensional inputs drawn from three
clusters on the unit circle. The network (``neuroadapt.reference.softhebb_brian2``: an
inhibitory pool neuron normalises ``exp(u/tau)`` across the outputs, plastic synapses apply
``dw = eta y (x - u w)``) and the torch rule (``neuroadapt.learn.tta.hebbian.softhebb_delta``,
applied online) learn from the same presentations. Writes

* ``softhebb_wta.png``: the inputs, the initial weights, and the final weights of both;
* ``softhebb_wta.json``: the largest weight difference Brian2 vs torch, and each neuron's
  cosine with its nearest cluster centre (competitive learning: one neuron per cluster).

Usage: ``python sims/softhebb_wta.py [--out DIR]`` or ``neuroadapt sim softhebb_wta``. Exit
status 1 if Brian2 and torch differ by more than 1e-12.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys

import numpy as np

ATOL = 1e-12


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="softhebb_wta", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join("out", "sims", "softhebb_wta"))
    ap.add_argument("--n", type=int, default=300, help="presentations")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import torch

    from neuroadapt._io import atomic_write, atomic_write_json
    from neuroadapt.learn.tta.hebbian import softhebb_delta
    from neuroadapt.reference.softhebb_brian2 import softhebb_brian2

    rng = np.random.default_rng(args.seed)
    angles = np.array([0.3, 2.4, 4.3])
    centres = np.stack([np.cos(angles), np.sin(angles)], 1)
    lab = rng.integers(0, 3, args.n)
    x = centres[lab] + 0.15 * rng.normal(size=(args.n, 2))
    w0 = 0.3 * rng.normal(size=(3, 2))
    eta, tau = 0.05, 0.2
    wb = softhebb_brian2(x, w0, eta, tau)
    wt = torch.from_numpy(w0.copy())
    for p in range(args.n):
        wt += eta * softhebb_delta(torch.from_numpy(x[p:p + 1]), wt, tau)
    wt = wt.numpy()
    diff = float(np.abs(wb - wt).max())
    cos = (wt / np.linalg.norm(wt, axis=1, keepdims=True)) @ centres.T
    summary = {"presentations": args.n, "eta": eta, "tau": tau, "max_abs_dw_brian2_vs_torch": diff,
               "tolerance": ATOL, "match": diff <= ATOL,
               "nearest_cluster": cos.argmax(1).tolist(), "cos_nearest_cluster": np.round(cos.max(1), 4).tolist(),
               "distinct_clusters_won": int(len(set(cos.argmax(1).tolist())))}

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(args.out, exist_ok=True)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(x[:, 0], x[:, 1], s=6, c=lab, cmap="tab10", alpha=0.4, label="inputs")
    ax.scatter(w0[:, 0], w0[:, 1], marker="s", c="k", label="initial w")
    ax.scatter(wb[:, 0], wb[:, 1], marker="o", s=90, facecolors="none", edgecolors="r", label="Brian2 final w")
    ax.scatter(wt[:, 0], wt[:, 1], marker="x", c="b", label="torch final w")
    ax.set_aspect("equal")
    ax.legend(fontsize=7)
    ax.set_title(f"soft-WTA Hebbian, max |Δw| = {diff:.1e}", fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write(os.path.join(args.out, "softhebb_wta.png"), lambda f: f.write(buf.getvalue()))
    atomic_write_json(os.path.join(args.out, "softhebb_wta.json"), summary)
    print(json.dumps(summary))
    return 0 if summary["match"] else 1


if __name__ == "__main__":
    sys.exit(main())
