"""HLOP subspace: the lateral Hebbian circuit learns the principal subspace of its input.

Draws samples from a distribution with a known principal subspace (k strong directions in n
dimensions plus weak isotropic noise) and feeds them, one per step, to

* the Brian2 rate network of ``neuroadapt.reference.hlop_brian2`` (Oja's subspace rule written as
  Brian2 equations: summed variables y = H x and xhat = H^T y, update H += eta y (x - xhat)), and
* neuroadapt's torch ``LateralSubspace`` with batch size 1, one iteration, no momentum, no clamp,

from the same initial H. Then a second task whose data varies along k other directions: k new
neurons start orthogonal to the first block, the first block is frozen, and the circuit learns
the new directions; the target is then the SVD subspace of both tasks' data. Writes

* ``hlop_subspace.png``: largest principal angle to NumPy's SVD subspace against samples seen
  (Brian2 solid, torch dashed) for both phases;
* ``hlop_subspace.json``: final angles, the largest |H_brian2 - H_torch|, pass/fail.

Usage: ``python sims/hlop_subspace.py [--out DIR]`` or ``neuroadapt sim hlop_subspace``. Exit
status 1 if an angle is >= 5 degrees or the two implementations differ by more than 1e-9.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from neuroadapt._io import atomic_write, atomic_write_json

ANGLE_DEG = 5.0
H_ATOL = 1e-9



def _torch_run(sub, X, every):
    import torch

    hist = [sub.H.numpy().copy()]
    for i, s in enumerate(X, 1):
        sub.hebbian(torch.from_numpy(s[None]))
        if i % every == 0 or i == len(X):
            hist.append(sub.H.numpy().copy())
    return hist


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="hlop_subspace", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join("out", "sims", "hlop_subspace"))
    ap.add_argument("--n", type=int, default=16, help="input dimension")
    ap.add_argument("--k", type=int, default=3, help="neurons of the first block (and strong directions per phase)")
    ap.add_argument("--samples", type=int, default=1200, help="samples per phase")
    ap.add_argument("--eta", type=float, default=0.02)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    import torch

    from neuroadapt.learn.hlop import LateralSubspace, principal_angles
    from neuroadapt.reference.hlop_brian2 import oja_brian2

    rng = np.random.default_rng(args.seed)
    n, k, S = args.n, args.k, args.samples
    basis = np.linalg.qr(rng.normal(size=(n, 2 * k)))[0].T          # 2k orthonormal directions
    scales = np.linspace(2.5, 1.5, k)
    # task 1 varies along the first k directions, task 2 along the next k; weak noise everywhere
    X = np.concatenate([(rng.normal(size=(S, k)) * scales) @ basis[:k], (rng.normal(size=(S, k)) * scales) @ basis[k:]])
    X += 0.05 * rng.normal(size=X.shape)
    every = max(1, S // 40)
    t0 = time.perf_counter()
    sub = LateralSubspace("sim", n, lr=args.eta, momentum=0.0, iterations=1, clamp=None, dtype=torch.float64)
    sub.add(k, torch.Generator().manual_seed(args.seed))
    phases = []
    for phase, Xp in enumerate((X[:S], X[S:])):
        if phase == 1:
            sub.merge()
            sub.add(k, torch.Generator().manual_seed(args.seed + 1))
        H0 = sub.H.numpy().copy()
        _, hist_b = oja_brian2(Xp, H0, args.eta, record_every=every, n_frozen=sub.n_old)
        hist_t = _torch_run(sub, Xp, every)
        _, _, vt = np.linalg.svd(X[: (phase + 1) * S], full_matrices=False)   # tasks seen so far
        target = vt[: (phase + 1) * k]
        ang_b = [float(principal_angles(H, target).max()) for H in hist_b]
        ang_t = [float(principal_angles(H, target).max()) for H in hist_t]
        diff = float(np.abs(hist_b[-1] - hist_t[-1]).max())
        phases.append({"neurons": int(sub.size), "frozen": int(sub.n_old), "angle_brian2_deg": ang_b[-1],
                       "angle_torch_deg": ang_t[-1], "initial_angle_deg": ang_b[0], "max_abs_H_diff": diff,
                       "curve_brian2": ang_b, "curve_torch": ang_t})
    seconds = time.perf_counter() - t0
    ok = all(p["angle_brian2_deg"] < ANGLE_DEG and p["angle_torch_deg"] < ANGLE_DEG and p["max_abs_H_diff"] < H_ATOL
             for p in phases)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for i, p in enumerate(phases):
        xs = i * S + np.minimum(np.arange(len(p["curve_brian2"])) * every, S)
        ax.plot(xs, p["curve_brian2"], "-", color=f"C{i}", label=f"task {i + 1}: Brian2 ({p['neurons']} neurons)")
        ax.plot(xs, p["curve_torch"], "--", color="k", lw=1, label="torch LateralSubspace" if i == 0 else None)
    ax.axhline(ANGLE_DEG, color="r", lw=0.8, ls=":", label="5 degrees")
    ax.set_yscale("log")
    ax.set_xlabel("samples seen")
    ax.set_ylabel("largest principal angle to SVD subspace (deg)")
    ax.set_title("Oja subspace rule: Brian2 rate network vs torch", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    os.makedirs(args.out, exist_ok=True)
    png = os.path.join(args.out, "hlop_subspace.png")
    atomic_write(png, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)
    summary = {"sim": "hlop_subspace", "n": n, "k_per_task": k, "samples_per_task": S, "eta": args.eta,
               "seed": args.seed, "angle_limit_deg": ANGLE_DEG, "H_atol": H_ATOL, "ok": ok,
               "seconds": seconds,
               "phases": [{k_: v for k_, v in p.items() if not k_.startswith("curve")} for p in phases]}
    atomic_write_json(os.path.join(args.out, "hlop_subspace.json"), summary)
    for i, p in enumerate(phases):
        print(f"task {i + 1}: angle Brian2 {p['angle_brian2_deg']:.2f} deg, torch {p['angle_torch_deg']:.2f} deg "
              f"(start {p['initial_angle_deg']:.1f}); max |H_b - H_t| {p['max_abs_H_diff']:.1e}")
    print(f"wrote {png} and hlop_subspace.json")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
