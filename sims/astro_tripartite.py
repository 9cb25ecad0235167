"""Tripartite synapse: release per spike against the input rate, without astrocyte, and with
open- and closed-loop gliotransmission (Brian2; Stimberg et al. 2019, figure 4C).

Three groups of Tsodyks-Markram synapses receive Poisson spike trains at rates 0.1 ... 100 Hz
(log-spaced, ``--reps`` synapses per rate):

* ``none``: no astrocyte;
* ``open``: each synapse receives gliotransmitter from an astrocyte that is not driven by it
  (its IP3 held near I_bias = 1 µM by the exogenous flux, so it oscillates on its own);
* ``closed``: each synapse drives its own astrocyte (glutamate -> Γ_A -> IP3 -> Ca2+) and
  receives that astrocyte's gliotransmitter.

Gliotransmission here is release-decreasing (α = 0 < U_0* = 0.6, as in every Brian 2 script):
the published qualitative result is that open-loop gliotransmission lowers release wherever
short-term depression does not already dominate, while closed-loop gliotransmission leaves
the slowest synapses like the astrocyte-free ones and lowers release once the input is fast
enough to drive the astrocyte; at the highest rates depression dominates and the three curves
meet.  The JSON records the mean release per spike r_S (after a transient) per configuration
and rate, and whether each of these statements holds on this run.  Brian2 numpy code generation, dt = 1 ms, ex. 4 parameters.

Usage: ``neuroadapt sim astro_tripartite [--out DIR] [--duration S] [--reps N]``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from neuroadapt._io import atomic_write, atomic_write_json

CONFIGS = ("none", "open", "closed")



def release_per_spike(spikes, r_s, start):
    """Mean and std over synapses of each synapse's mean r_S at its spikes after step ``start``."""
    means = []
    for j in range(spikes.shape[1]):
        k = np.nonzero(spikes[start:, j])[0] + start
        means.append(r_s[k, j].mean() if len(k) else np.nan)
    return np.asarray(means)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="astro_tripartite", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join("out", "sims", "astro_tripartite"))
    ap.add_argument("--duration", type=float, default=15.0, help="simulated seconds")
    ap.add_argument("--transient", type=float, default=3.0, help="seconds left out of the averages")
    ap.add_argument("--n-rates", type=int, default=10)
    ap.add_argument("--reps", type=int, default=4, help="synapses per rate and configuration")
    ap.add_argument("--seed", type=int, default=1929)
    args = ap.parse_args(argv)

    from neuroadapt.core.astro_params import AstroParams
    from neuroadapt.reference.astrocyte_brian2 import simulate_tripartite_brian2

    dt, p = 1e-3, AstroParams()
    T = int(round(args.duration / dt))
    rates = np.logspace(-1, 2, args.n_rates)
    per = args.n_rates * args.reps                           # synapses per configuration
    syn_rates = np.tile(np.repeat(rates, args.reps), len(CONFIGS))
    rng = np.random.default_rng(args.seed)
    spikes = (rng.random((T, syn_rates.size)) < syn_rates * dt).astype(np.float64)
    # astrocytes: the first `per` serve the open loop, the next `per` the closed loop
    n_syn, n_astro = syn_rates.size, 2 * per
    a_in, a_out = np.zeros((n_astro, n_syn)), np.zeros((n_syn, n_astro))
    for k in range(per):
        a_out[per + k, k] = 1                                 # open: astrocyte k -> synapse per+k
        a_in[per + k, 2 * per + k] = a_out[2 * per + k, per + k] = 1   # closed
    bias = np.r_[np.ones(per), np.zeros(per)]                 # µM
    t0 = time.perf_counter()
    out = simulate_tripartite_brian2(spikes, a_in, a_out, params=p, I_bias=bias, dt=dt)
    secs = time.perf_counter() - t0
    start = int(round(args.transient / dt))
    curves = {}
    for c, name in enumerate(CONFIGS):
        sl = slice(c * per, (c + 1) * per)
        r = release_per_spike(spikes[:, sl], out["r_S"][:, sl], start).reshape(args.n_rates, args.reps)
        curves[name] = {"mean": np.nanmean(r, 1).tolist(), "std": np.nanstd(r, 1).tolist()}
    none, opn, clo = (np.asarray(curves[k]["mean"]) for k in CONFIGS)
    low, mid, high = rates < 0.3, (rates >= 1) & (rates <= 10), rates >= 40
    checks = {
        "none_depresses_with_rate": bool(np.all(np.diff(none[rates >= 0.4]) < 0)),
        "open_loop_lowers_release_below_depression_range": bool(np.all(opn[rates <= 10] < 0.75 * none[rates <= 10])),
        "closed_loop_like_none_at_lowest_rates": bool(np.all(np.abs(clo[low] - none[low]) < 0.15 * none[low])),
        "closed_loop_lowers_release_at_intermediate_rates": bool(np.all(clo[mid] < 0.75 * none[mid])),
        "depression_dominates_at_high_rates": bool(np.all(np.abs(np.r_[opn[high], clo[high]] - np.r_[none[high], none[high]])
                                                          < 0.2 * np.r_[none[high], none[high]])),
    }
    for i, f in enumerate(rates):
        print(f"{f:7.2f} Hz  r_S per spike: none {none[i]:.3f}  open {opn[i]:.3f}  closed {clo[i]:.3f}")
    print("qualitative checks:", checks)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for name, col in zip(CONFIGS, ("black", "tab:green", "tab:red")):
        ax[0].errorbar(rates, curves[name]["mean"], curves[name]["std"], fmt="o-", color=col, ms=4, lw=0.8,
                       label={"none": "no astrocyte", "open": "open loop", "closed": "closed loop"}[name])
    ax[0].set(xscale="log", xlabel="input rate (Hz)", ylabel="release per spike ⟨r_S⟩", ylim=(0, 0.7),
              title="tripartite synapse I/O (cf. Stimberg et al. fig. 4C)")
    ax[0].legend(fontsize=8)
    t = np.arange(1, T + 1) * dt
    j_hi = 2 * per + per - 1                                  # closed loop, fastest rate
    ax[1].plot(t, out["Gamma_S"][:, j_hi], color="tab:red", label=f"Γ_S closed loop, {rates[-1]:.0f} Hz")
    ax[1].plot(t, out["Gamma_S"][:, 2 * per], color="tab:orange", label=f"Γ_S closed loop, {rates[0]:.1f} Hz")
    ax[1].plot(t, out["Gamma_S"][:, per], color="tab:green", label="Γ_S open loop")
    ax[1].plot(t, out["C"][:, 2 * per - 1], color="grey", lw=0.6, label="Ca2+ (µM), closed-loop astrocyte")
    ax[1].set(xlabel="time (s)", title="presynaptic receptor activation")
    ax[1].legend(fontsize=7)
    fig.tight_layout()
    os.makedirs(args.out, exist_ok=True)
    atomic_write(os.path.join(args.out, "astro_tripartite.png"), lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
    result = {"sim": "astro_tripartite", "params": "stimberg_ex4", "dt": dt, "duration_s": args.duration,
              "transient_s": args.transient, "reps": args.reps, "seed": args.seed, "rates_hz": rates.tolist(),
              "release_per_spike": curves, "checks": checks, "reproduces_published_behaviour": all(checks.values()),
              "seconds_brian2": round(secs, 2)}

    atomic_write_json(os.path.join(args.out, "astro_tripartite.json"), result)
    print(f"wrote {args.out}/astro_tripartite.png and astro_tripartite.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
