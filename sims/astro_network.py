"""A small recurrent E/I network whose excitatory synapses are tripartite (Brian2; after
Stimberg et al. 2019, example 6, scaled down).

80 excitatory and 20 inhibitory conductance-based LIF neurons (example 1 parameters, Euler),
recurrently connected (p = 0.2); excitatory synapses are Tsodyks-Markram synapses whose
postsynaptic conductance jump is ``w_e r_S``.  20 G-ChI astrocytes (example 4 parameters, RK4):
the synapses onto neuron ``j`` drive astrocyte ``j mod 20`` (their neurotransmitter averaged, as in
example 6) and receive its gliotransmitter (closed loop, release-decreasing: α = 0).  The external
current steps up by 20 % during the second quarter of the run, as in example 6.  The same network
(same connectivity, same initial voltages) is run once with and once without astrocytes.

Writes ``astro_network.png`` (rasters, population rates, astrocyte Ca2+, mean Γ_S) and
``astro_network.json`` (rates per phase, mean release per spike, gliotransmitter events).

Usage: ``neuroadapt sim astro_network [--out DIR] [--duration S] [--seed N]``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from neuroadapt._io import atomic_write, atomic_write_json

N_E, N_I, N_A = 80, 20, 20
NEURON_EQS = """
dv/dt = (g_l*(E_l - v) + g_e*(E_e - v) + g_i*(E_i - v) + I_ex*stim(t))/C_m : volt (unless refractory)
dg_e/dt = -g_e/tau_e : siemens
dg_i/dt = -g_i/tau_i : siemens
"""



def run_network(with_astro: bool, duration: float, dt: float, seed: int) -> dict:
    import brian2 as b2

    from neuroadapt.core.astro_params import AstroParams
    from neuroadapt.reference.astrocyte_brian2 import (ASTROCYTE_EQUATIONS, GLIO_RELEASE, SYNAPSE_EQUATIONS,
                                                       SYNAPSE_ON_PRE, _namespace)

    b2.prefs.codegen.target = "numpy"
    b2.start_scope()
    mV, nS, pF, pA, ms, second, um = b2.mV, b2.nS, b2.pF, b2.pA, b2.ms, b2.second, b2.umolar
    rng = np.random.default_rng(seed)
    ns = _namespace(b2, AstroParams())
    ns.update(g_l=9.99 * nS, E_l=-60 * mV, C_m=198 * pF, E_e=0 * mV, E_i=-80 * mV, tau_e=5 * ms, tau_i=10 * ms,
              I_ex=110 * pA, w_e=0.6 * nS, w_i=6 * nS,
              stim=b2.TimedArray([1.0, 1.2, 1.0, 1.0], dt=duration / 4 * second))
    clock = b2.Clock(dt=dt * second)
    neurons = b2.NeuronGroup(N_E + N_I, NEURON_EQS, threshold="v > -50*mV", reset="v = E_l", refractory=5 * ms,
                             method="euler", clock=clock, namespace=ns, order=3)
    neurons.v = (-60 + 10 * rng.random(N_E + N_I)) * mV
    exc, inh = neurons[:N_E], neurons[N_E:]
    pre_e, post_e = np.nonzero(rng.random((N_E, N_E + N_I)) < 0.2)
    pre_e, post_e = pre_e[pre_e != post_e], post_e[pre_e != post_e]
    syn_e = b2.Synapses(exc, neurons, SYNAPSE_EQUATIONS, on_pre=SYNAPSE_ON_PRE + "g_e_post += w_e * r_S",
                        method="exact", clock=clock, order=2, namespace=ns)
    syn_e.connect(i=pre_e, j=post_e)
    syn_e.x_S = 1.0
    pre_i, post_i = np.nonzero(rng.random((N_I, N_E + N_I)) < 0.2)
    syn_i = b2.Synapses(inh, neurons, on_pre="g_i_post += w_i", clock=clock, namespace=ns)
    syn_i.connect(i=pre_i, j=post_i)
    objects = [neurons, syn_e, syn_i]
    spikes = b2.SpikeMonitor(neurons)
    rs = b2.StateMonitor(syn_e, ["Gamma_S"], record=np.arange(0, len(pre_e), 50), clock=b2.Clock(dt=10 * ms))
    objects += [spikes, rs]
    if with_astro:
        astro = b2.NeuronGroup(N_A, ASTROCYTE_EQUATIONS, threshold="C>C_Theta", refractory="C>C_Theta",
                               reset=GLIO_RELEASE, method="rk4", clock=clock, namespace=ns, order=0)
        astro.h, astro.x_A, astro.I_bias = 0.9, 1.0, 0 * um
        target = post_e % N_A
        n_in = np.bincount(target, minlength=N_A)
        up = b2.Synapses(syn_e, astro, "Y_post = Y_S_pre / n_avg : mmolar (summed)\nn_avg : 1",
                         clock=clock)
        up.connect(i=np.arange(len(pre_e)), j=target)
        up.n_avg = n_in[target]
        down = b2.Synapses(astro, syn_e, "G_A_post = G_A_pre : mmolar (summed)", clock=clock)
        down.connect(i=target, j=np.arange(len(pre_e)))
        ca = b2.StateMonitor(astro, "C", record=True, clock=b2.Clock(dt=10 * ms))
        glio = b2.SpikeMonitor(astro)
        objects += [astro, up, down, ca, glio]
    # mean release per presynaptic spike: r_S of every excitatory synapse sampled right after delivery
    rmon = b2.StateMonitor(syn_e, "r_S", record=np.arange(0, len(pre_e), 7), clock=clock, when="end")
    objects.append(rmon)
    net = b2.Network(*objects)
    net.run(duration * second, namespace={})
    t = np.asarray(spikes.t / second)
    i = np.asarray(spikes.i)
    out = {"t": t, "i": i, "gamma_t": np.asarray(rs.t / second), "gamma_s": np.asarray(rs.Gamma_S).mean(0)}
    # release per spike of the sampled synapses: r_S changes only at their presynaptic spikes
    r = np.asarray(rmon.r_S)
    changed = np.abs(np.diff(r, axis=1)) > 0
    out["release_per_spike"] = float(r[:, 1:][changed].mean()) if changed.any() else float("nan")
    if with_astro:
        out["ca_t"], out["ca"] = np.asarray(ca.t / second), np.asarray(ca.C / um)
        out["glio_events"] = int(glio.num_spikes)
    out["n_exc_synapses"] = int(len(pre_e))
    return out


def phase_rates(run, duration):
    """Mean rate (Hz) of E and I neurons in each quarter of the run."""
    edges = np.linspace(0, duration, 5)
    res = {}
    for name, sl, n in (("exc", run["i"] < N_E, N_E), ("inh", run["i"] >= N_E, N_I)):
        counts = np.histogram(run["t"][sl], edges)[0]
        res[name] = (counts / n / np.diff(edges)).round(3).tolist()
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="astro_network", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join("out", "sims", "astro_network"))
    ap.add_argument("--duration", type=float, default=4.0, help="simulated seconds")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    dt = 5e-4
    t0 = time.perf_counter()
    runs = {k: run_network(k == "astro", args.duration, dt, args.seed) for k in ("none", "astro")}
    secs = time.perf_counter() - t0
    summary = {}
    for k, r in runs.items():
        summary[k] = {"rates_hz_per_quarter": phase_rates(r, args.duration),
                      "release_per_spike": r["release_per_spike"], "gamma_s_final": float(r["gamma_s"][-1])}
        if k == "astro":
            summary[k]["glio_events"] = r["glio_events"]
        print(k, summary[k])

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, 1, figsize=(9, 9), sharex=True, gridspec_kw={"height_ratios": [2, 2, 1.3, 1.3]})
    for ax, k in zip(axes[:2], ("none", "astro")):
        r = runs[k]
        ax.plot(r["t"], r["i"], ",", color="k")
        ax.set(ylabel="neuron", title=f"{'without' if k == 'none' else 'with'} astrocytes: E rate per quarter "
                                      f"{summary[k]['rates_hz_per_quarter']['exc']} Hz")
    a = runs["astro"]
    axes[2].plot(a["ca_t"], a["ca"].T, lw=0.6)
    axes[2].set(ylabel="astro Ca2+ (µM)")
    for k, col in (("none", "k"), ("astro", "tab:red")):
        axes[3].plot(runs[k]["gamma_t"], runs[k]["gamma_s"], color=col, label=k)
    axes[3].set(ylabel="mean Γ_S", xlabel="time (s)")
    axes[3].legend(fontsize=8)
    for ax in axes:
        for q in (1, 2):
            ax.axvline(q * args.duration / 4, color="grey", lw=0.5, ls=":")
    fig.tight_layout()
    os.makedirs(args.out, exist_ok=True)
    atomic_write(os.path.join(args.out, "astro_network.png"), lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
    result = {"sim": "astro_network", "n_exc": N_E, "n_inh": N_I, "n_astro": N_A, "dt": dt,
              "duration_s": args.duration, "seed": args.seed, "n_exc_synapses": runs["none"]["n_exc_synapses"],
              "summary": summary, "seconds_brian2": round(secs, 2)}

    atomic_write_json(os.path.join(args.out, "astro_network.json"), result)
    print(f"wrote {args.out}/astro_network.png and astro_network.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
