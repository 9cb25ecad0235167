"""LIF twin: neuroadapt's LIFLayer against its independent Brian2 twin, on the same input.

Runs one random input spike train through a layer of leaky and of current-based (CUBA)
LIF neurons twice -- once as ``neuroadapt.nn.LIFLayer`` (torch, float64) and once as a
Brian2 network (``neuroadapt.reference.simulate_brian2``) -- and writes

* ``lif_twin.png``: membrane traces of a few neurons (Brian2 solid, torch dashed) and both
  spike rasters, one column per neuron type;
* ``lif_twin.json``: per neuron type, the largest membrane difference, the number of
  (step, neuron) entries whose spikes differ, and the spike counts.

Usage: ``python sims/lif_twin.py [--out DIR]`` (default ``out/sims/lif_twin``), or
``neuroadapt sim lif_twin``.  Exit status 1 if the two disagree beyond the tolerance.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from neuroadapt._io import atomic_write, atomic_write_json

MEM_ATOL = 1e-10   # float64 on both sides; see docs/reference.md for why
SHOW = 3           # neurons whose membrane traces are drawn


def _torch_run(spikes, weights, neuron, params, reset):
    import torch

    from neuroadapt.nn import LIFLayer

    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)   # keep β, α, θ at full precision
    try:
        layer = LIFLayer(weights.shape[1], weights.shape[0], neuron=neuron,
                         reset_mechanism=reset, **params).double()
    finally:
        torch.set_default_dtype(prev)
    with torch.no_grad():
        layer.fc.weight.copy_(torch.as_tensor(weights))
        if layer.fc.bias is not None:
            layer.fc.bias.zero_()
        spk, mem = layer(torch.as_tensor(spikes)[:, None, :], return_mem=True)
    return {"spikes": spk[:, 0].numpy(), "mem": mem[:, 0].numpy()}



def _figure(runs, dt, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(runs), figsize=(6 * len(runs), 6), squeeze=False,
                             gridspec_kw={"height_ratios": [3, 2]})
    for col, (neuron, (twin, torch_run, threshold)) in enumerate(runs.items()):
        T, n = twin["mem"].shape
        t_ms = np.arange(T) * dt * 1e3
        ax = axes[0, col]
        for j in range(min(SHOW, n)):
            line, = ax.plot(t_ms, twin["mem"][:, j], lw=1.4, label=f"neuron {j} Brian2")
            ax.plot(t_ms, torch_run["mem"][:, j], "--", lw=1.0, color="k", alpha=0.7,
                    label="LIFLayer" if j == 0 else None)
        ax.axhline(threshold, color="grey", lw=0.8, ls=":", label="threshold")
        ax.set(title=f"{neuron}: membrane", xlabel="time (ms)", ylabel="v")
        ax.legend(fontsize=7, loc="upper right")
        ax = axes[1, col]
        tt, jj = np.nonzero(twin["spikes"])
        ax.plot(tt * dt * 1e3, jj, "|", ms=7, color="tab:blue", label="Brian2")
        tt, jj = np.nonzero(torch_run["spikes"])
        ax.plot(tt * dt * 1e3, jj + 0.3, ".", ms=2.5, color="tab:red", label="LIFLayer")
        ax.set(title=f"{neuron}: spikes", xlabel="time (ms)", ylabel="neuron")
        ax.legend(fontsize=7, loc="upper right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="lif_twin", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join("out", "sims", "lif_twin"))
    ap.add_argument("--reset", default="subtract", choices=["subtract", "zero", "none"])
    ap.add_argument("--steps", type=int, default=300, help="time steps T")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from neuroadapt.reference import compare, simulate_brian2

    dt, n_in, n_out, p = 1e-3, 20, 10, 0.1
    rng = np.random.default_rng(args.seed)
    spikes = (rng.random((args.steps, n_in)) < p).astype(np.float64)
    setups = {"leaky": (dict(beta=0.9, threshold=1.0), 0.06, 0.3),
              "synaptic": (dict(beta=0.9, alpha=0.8, threshold=1.0), 0.015, 0.08)}
    runs, summary, ok = {}, {}, True
    for neuron, (params, mu, sd) in setups.items():
        weights = rng.normal(mu, sd, (n_out, n_in))
        t0 = time.perf_counter()
        twin = simulate_brian2(spikes, weights, neuron=neuron, reset_mechanism=args.reset,
                               dt=dt, **params)
        t1 = time.perf_counter()
        torch_run = _torch_run(spikes, weights, neuron, params, args.reset)
        t2 = time.perf_counter()
        c = compare(twin, torch_run, mem_atol=MEM_ATOL)
        ok &= c["match"]
        runs[neuron] = (twin, torch_run, params["threshold"])
        summary[neuron] = {"max_abs_dv": c["max_abs_dv"], "spike_mismatches": c["spike_mismatches"],
                           "n_spikes_brian2": c["n_spikes_reference"],
                           "n_spikes_torch": c["n_spikes_other"], "match": c["match"],
                           "seconds_brian2": round(t1 - t0, 3), "seconds_torch": round(t2 - t1, 3),
                           **params}
        print(f"{neuron:9s} max|dv| = {c['max_abs_dv']:.2e}  spike mismatches = "
              f"{c['spike_mismatches']}  spikes = {c['n_spikes_reference']}")

    os.makedirs(args.out, exist_ok=True)
    title = "Brian2 twin vs LIFLayer (float64, reset=%s): " % args.reset + ";  ".join(
        f"{k} max|dv| {v['max_abs_dv']:.1e}, {v['spike_mismatches']} spike mismatches"
        for k, v in summary.items())
    _figure(runs, dt, os.path.join(args.out, "lif_twin.png"), title)
    result = {"sim": "lif_twin", "reset_mechanism": args.reset, "steps": args.steps, "dt": dt,
              "n_in": n_in, "n_out": n_out, "input_spike_prob": p, "seed": args.seed,
              "mem_atol": MEM_ATOL, "match": bool(ok), "neurons": summary}

    atomic_write_json(os.path.join(args.out, "lif_twin.json"), result)
    print(f"wrote {os.path.join(args.out, 'lif_twin.png')} and lif_twin.json")
    if not ok:
        print(f"error: LIFLayer and the Brian2 twin disagree (tolerance {MEM_ATOL})",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
