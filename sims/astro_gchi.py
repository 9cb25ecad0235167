"""G-ChI astrocyte driven by synaptic glutamate: Ca2+ oscillations against the input rate (Brian2).

Six tripartite synapses, each fed by a Poisson spike train of a different rate (0.2 ... 10 Hz), each
driving its own G-ChI astrocyte (parameters of Stimberg et al. 2019, example 2; no feedback to the
synapse).  Brian2 (numpy code generation, RK4, dt = 1 ms) simulates the network; the same spike
trains are then run through neuroadapt's torch model (``neuroadapt.core.astrocyte``) and the
largest difference, relative to each trace's range, is reported.

Writes ``astro_gchi.png`` (Ca2+, IP3 and Γ_A traces per input rate; torch dashed over Brian2) and
``astro_gchi.json`` (per rate: number of Ca2+ peaks above 0.3 µM and their frequency, mean and
max Ca2+, max IP3; torch-vs-Brian2 relative error per variable).

Usage: ``neuroadapt sim astro_gchi [--out DIR] [--duration S] [--seed N]``.  Exit status 1 if the
torch model and Brian2 differ by more than 1 % of a trace's range.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from neuroadapt._io import atomic_write, atomic_write_json

RATES = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
PEAK_LEVEL = 0.3   # µM: a Ca2+ "peak" is an upward crossing of this level
REL_TOL = 0.01



def rel_errors(ref: dict, other: dict, names) -> dict:
    """max |ref - other| / (range of ref) per variable (range floored at 1e-12)."""
    out = {}
    for k in names:
        a, b = np.asarray(ref[k]), np.asarray(other[k])
        out[k] = float(np.max(np.abs(a - b)) / max(float(a.max() - a.min()), 1e-12)) if a.size else 0.0
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="astro_gchi", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join("out", "sims", "astro_gchi"))
    ap.add_argument("--duration", type=float, default=20.0, help="simulated seconds")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)

    import torch

    from neuroadapt.core.astro_params import PRESETS, STATE_NAMES
    from neuroadapt.core.astrocyte import tripartite_scan
    from neuroadapt.reference.astrocyte_brian2 import simulate_tripartite_brian2

    dt, p = 1e-3, PRESETS["stimberg_ex2"]
    T, n = int(round(args.duration / dt)), len(RATES)
    rng = np.random.default_rng(args.seed)
    spikes = (rng.random((T, n)) < np.asarray(RATES) * dt).astype(np.float64)
    a_in, a_out = np.eye(n), np.zeros((n, n))
    t0 = time.perf_counter()
    b2 = simulate_tripartite_brian2(spikes, a_in, a_out, params=p, dt=dt)
    t1 = time.perf_counter()
    tr, _ = tripartite_scan(torch.as_tensor(spikes), a_in, a_out, params=p, dt=dt)
    t2 = time.perf_counter()
    th = {k: v[:, 0].numpy() for k, v in tr.items()}
    err = rel_errors(b2, th, STATE_NAMES)
    ok = max(err.values()) <= REL_TOL

    per_rate = []
    for j, rate in enumerate(RATES):
        c = b2["C"][:, j]
        peaks = int(np.sum((c[1:] > PEAK_LEVEL) & (c[:-1] <= PEAK_LEVEL)))
        per_rate.append({"rate_hz": rate, "input_spikes": int(spikes[:, j].sum()), "ca_peaks": peaks,
                         "ca_peak_freq_hz": peaks / args.duration, "ca_mean_uM": float(c.mean()),
                         "ca_max_uM": float(c.max()), "ip3_max_uM": float(b2["I"][:, j].max()),
                         "gamma_a_mean": float(b2["Gamma_A"][:, j].mean())})
        print(f"{rate:5.1f} Hz: {peaks} Ca2+ peaks, mean Ca {c.mean():.3f} µM, max IP3 {b2['I'][:, j].max():.2f} µM")
    print(f"torch vs Brian2: max relative error {max(err.values()):.2e} ({'ok' if ok else 'FAIL'})")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.arange(1, T + 1) * dt
    fig, axes = plt.subplots(n, 1, figsize=(9, 1.6 * n), sharex=True)
    for j, ax in enumerate(axes):
        ax.plot(t, b2["C"][:, j], color="tab:red", lw=1, label="Ca2+ (µM), Brian2")
        ax.plot(t, th["C"][:, j], "k--", lw=0.6, label="Ca2+, torch")
        ax.plot(t, b2["I"][:, j], color="tab:blue", lw=1, label="IP3 (µM)")
        ax.plot(t, b2["Gamma_A"][:, j], color="tab:green", lw=0.8, label="Γ_A")
        st = np.nonzero(spikes[:, j])[0] * dt
        ax.plot(st, np.full_like(st, -0.15), "|", color="grey", ms=4)
        ax.set_ylabel(f"{RATES[j]} Hz")
        if j == 0:
            ax.legend(fontsize=7, ncol=4, loc="upper right")
    axes[-1].set_xlabel("time (s)")
    fig.suptitle(f"G-ChI astrocytes driven by synaptic glutamate (Stimberg et al. ex. 2 parameters); "
                 f"torch vs Brian2 max rel. error {max(err.values()):.1e}", fontsize=9)
    fig.tight_layout()
    os.makedirs(args.out, exist_ok=True)
    atomic_write(os.path.join(args.out, "astro_gchi.png"), lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
    result = {"sim": "astro_gchi", "params": "stimberg_ex2", "dt": dt, "duration_s": args.duration,
              "seed": args.seed, "per_rate": per_rate, "torch_vs_brian2_rel_error": err, "rel_tol": REL_TOL,
              "match": bool(ok), "seconds_brian2": round(t1 - t0, 2), "seconds_torch": round(t2 - t1, 2)}

    atomic_write_json(os.path.join(args.out, "astro_gchi.json"), result)
    print(f"wrote {args.out}/astro_gchi.png and astro_gchi.json")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
