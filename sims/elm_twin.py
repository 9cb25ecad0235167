"""ELM twin: neuroadapt's ELM / Branch-ELM against its float64 NumPy twin and a continuous-time
Brian2 model, on the same weights and the same input spikes.

For each of three neurons -- ELM v1, ELM v2, and a Branch-ELM (random routing, two hidden MLP
layers, SiLU) -- one random spike train drives

* ``neuroadapt.nn.ELM`` (float64): the fused sequence call, and the step-by-step call;
* ``neuroadapt.reference.elm.simulate_numpy``: the paper's equations, per-synapse traces;
* ``neuroadapt.reference.elm.simulate_brian2``: leaks as exact ODEs, spikes through Synapses,
  the MLP as a network_operation.

Writes ``elm_twin.png`` (memory traces of a few units: Brian2 solid, torch dashed) and
``elm_twin.json`` (largest absolute differences of branch traces, memory and output).

Usage: ``python sims/elm_twin.py [--out DIR] [--steps T]`` or ``neuroadapt sim elm_twin``.
Exit status 1 if any difference exceeds ``ATOL``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from neuroadapt._io import atomic_write, atomic_write_json

ATOL = 1e-10        # float64 everywhere; differences are summation-order rounding (~1e-15)
SHOW = 4            # memory units drawn per neuron

SETUPS = {
    "ELM v1": dict(version="v1"),
    "ELM v2": dict(version="v2"),
    "Branch-ELM": dict(version="v1", n_branches=6, synapses_per_branch=5, routing="random", mlp_layers=2,
                       mlp_activation="silu"),
}



def _torch_runs(elm, spikes):
    import torch

    x = torch.as_tensor(spikes)[:, None, :]
    with torch.no_grad():
        y, mem, _ = elm.forward_sequence(x)
        state, traces, steps, outs = None, [], [], []
        for t in range(x.shape[0]):
            yt, state = elm(x[t], state)
            traces.append(state.trace[0].numpy().copy())
            steps.append(state.memory[0].numpy().copy())
            outs.append(yt[0].numpy().copy())
    # the fused call keeps no per-step branch traces: both runs report the step calls' traces
    fused = {"memory": mem[:, 0].numpy(), "output": y[:, 0].numpy(), "trace": np.array(traces)}
    stepwise = {"memory": np.array(steps), "output": np.array(outs), "trace": np.array(traces)}
    return fused, stepwise


def _figure(runs, dt, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(5.5 * len(runs), 3.8), squeeze=False)
    for ax, (name, (b2run, fused)) in zip(axes[0], runs.items()):
        T = b2run["memory"].shape[0]
        t_ms = np.arange(T) * dt * 1e3
        for j in range(min(SHOW, b2run["memory"].shape[1])):
            ax.plot(t_ms, b2run["memory"][:, j], lw=1.6, label=f"m[{j}] Brian2")
            ax.plot(t_ms, fused["memory"][:, j], "--", lw=1.0, color="k", alpha=0.7,
                    label="nn.ELM" if j == 0 else None)
        ax.set(title=name, xlabel="time (ms)", ylabel="memory m")
        ax.legend(fontsize=7, loc="upper right")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="elm_twin", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join("out", "sims", "elm_twin"))
    ap.add_argument("--steps", type=int, default=200, help="time steps T")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import torch

    from neuroadapt.nn import ELM
    from neuroadapt.reference.elm import compare_states, simulate_brian2, simulate_numpy

    dt, n_in, n_mem, n_out, rate = 1e-3, 12, 6, 3, 0.15
    rng = np.random.default_rng(args.seed)
    spikes = (rng.random((args.steps, n_in)) < rate).astype(np.float64)
    summary, runs, ok = {}, {}, True
    for k, (name, opts) in enumerate(SETUPS.items()):
        torch.manual_seed(args.seed + k)
        prev = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            elm = ELM(n_in, n_out, n_memory=n_mem, tau_m_min=2e-3, tau_m_max=0.2, dt=dt, **opts)
        finally:
            torch.set_default_dtype(prev)
        p = elm.reference_params()
        t0 = time.perf_counter()
        ref = simulate_numpy(spikes, p)
        t1 = time.perf_counter()
        b2run = simulate_brian2(spikes, p)
        t2 = time.perf_counter()
        fused, stepwise = _torch_runs(elm, spikes)
        t3 = time.perf_counter()
        entry = {"options": opts,
                 "torch_fused_vs_numpy": compare_states(ref, fused),
                 "torch_steps_vs_numpy": compare_states(ref, stepwise),
                 "brian2_vs_numpy": compare_states(ref, b2run),
                 "torch_fused_vs_brian2": compare_states(b2run, fused),
                 "max_abs_memory": float(np.abs(ref["memory"]).max()),
                 "seconds": {"numpy": round(t1 - t0, 3), "brian2": round(t2 - t1, 3), "torch": round(t3 - t2, 3)}}
        worst = max(v for key in ("torch_fused_vs_numpy", "torch_steps_vs_numpy", "brian2_vs_numpy")
                    for v in entry[key].values())
        entry["max_abs_diff"] = worst
        entry["match"] = bool(worst <= ATOL)
        ok &= entry["match"]
        summary[name] = entry
        runs[name] = (b2run, fused)
        print(f"{name:11s} max |difference| over trace/memory/output = {worst:.1e} "
              f"(|m| up to {entry['max_abs_memory']:.2f})")

    os.makedirs(args.out, exist_ok=True)
    title = "Brian2 (continuous-time leaks + MLP network_operation) vs nn.ELM, float64: " + "; ".join(
        f"{k} max|d| {v['max_abs_diff']:.0e}" for k, v in summary.items())
    _figure(runs, dt, os.path.join(args.out, "elm_twin.png"), title)
    result = {"sim": "elm_twin", "steps": args.steps, "dt": dt, "n_in": n_in, "n_memory": n_mem,
              "input_spike_prob": rate, "seed": args.seed, "atol": ATOL, "match": bool(ok), "neurons": summary}

    atomic_write_json(os.path.join(args.out, "elm_twin.json"), result)
    print(f"wrote {os.path.join(args.out, 'elm_twin.png')} and elm_twin.json")
    if not ok:
        print(f"error: nn.ELM and its twins disagree (tolerance {ATOL})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
