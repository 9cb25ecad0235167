"""``neuroadapt bench loihi-emulator``: the bit-exact Loihi emulator against Lava's CPU fixed-point run.

One network, one set of input spikes, both simulators:

* ``lava``: ``netx.hdf5.Network(network.net)`` in ``Loihi2SimCfg(select_tag="fixed_pt")`` (Lava's
  bit-accurate ``PyLifModelBitAcc`` / ``PyDenseModelBitAcc``), in the Python 3.10 side
  environment (``python hardware/lava_env.py``), samples one after another with the state reset
  between them (``hardware/lava_runner.py``).  Timed inside that process: the ``B`` samples' runs,
  after one warm-up sample that also pays for building and compiling (``lava_build_ms``, reported
  separately, not in the ratio).
* ``neuroadapt``: :class:`neuroadapt.export.loihi.emulator.Emulator` (loaded once, untimed, like
  Lava's build) run on the whole batch ``(T, B, n)`` at once (median of ``repeats`` calls).
* ``neuroadapt_per_sample``: the same emulator called once per sample (``B`` calls), as Lava runs.

Validity: every layer's spikes at every step and the readout's voltage must be identical
(``spikes_identical``, ``spike_mismatches``); otherwise the bench exits 1.

The network: by default the shapes of ``models/spoken_digits_rlif.yaml`` (700-128-20, recurrent
LIF, threshold 0.1, beta 0.9, 70 steps) with snnTorch-default random weights scaled by
``weight_gain``; ``net=PATH`` benchmarks an exported ``network.net`` instead.  Inputs are
Bernoulli spikes of rate ``input_rate``.  If Lava's side environment is missing, the bench stops
with an error that says how to create it.
"""
from __future__ import annotations

import os
import statistics
import tempfile
import time

import numpy as np
import torch

from .common import environment, merge_config, num_threads, summarize

NAME = "loihi-emulator"
DEFAULTS = {
    "n_inputs": 700,
    "hidden": 128,
    "n_classes": 20,
    "T": 70,
    "B": 16,
    "threshold": 0.1,
    "beta": 0.9,
    "weight_gain": 1.0,
    "input_rate": 0.02,
    "repeats": 5,
    "threads": 1,
    "seed": 0,
    "net": "",
    "device": "cpu",
}
QUICK = {"T": 10, "B": 3, "repeats": 2, "n_inputs": 100, "hidden": 32}


def _network(cfg):
    from neuroadapt.engine.models import SpikingClassifier
    from neuroadapt.export.loihi import quantise_model, read_netx

    if cfg["net"]:
        return read_netx(cfg["net"])
    torch.manual_seed(cfg["seed"])
    m = SpikingClassifier(cfg["n_inputs"], cfg["n_classes"], hidden=(cfg["hidden"],), recurrent=True,
                          beta=cfg["beta"], threshold=cfg["threshold"], reset="zero")
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(cfg["weight_gain"])
    return quantise_model(m.eval())


def run(config_overrides=None) -> dict:
    from neuroadapt.export.loihi import write_netx
    from neuroadapt.export.loihi.emulator import Emulator
    from neuroadapt.export.loihi.lava import require, run_lava

    cfg = merge_config(DEFAULTS, config_overrides, QUICK)
    if cfg["device"] != "cpu":
        from neuroadapt.errors import UnsupportedOptionError

        raise UnsupportedOptionError("loihi-emulator runs on the CPU only (Lava's fixed-point models are NumPy)")
    require()  # no side environment: ReferenceUnavailableError with the command that creates it
    rng = np.random.default_rng(cfg["seed"])
    with num_threads(cfg["threads"]):
        net = _network(cfg)
        T, B = cfg["T"], cfg["B"]
        x = rng.random((T, B, net.n_inputs)) < cfg["input_rate"]
        with tempfile.TemporaryDirectory(prefix="neuroadapt-bench-loihi-") as tmp:
            path = write_netx(net, os.path.join(tmp, "network.net"), t_sample=T)
            steps = T + net.delay
            warm = np.concatenate([x[:, :1], x], axis=1)       # sample 0 again first: Lava's warm-up
            lava = run_lava(path, warm, steps=steps)
        em = Emulator(net)          # loading (netx's weight optimisation) is not timed, as for Lava
        emu = em.run(x)
        mismatches = sum(int((mine != theirs[:, 1:]).sum()) for mine, theirs in zip(emu.spikes, lava["spikes"]))
        v_mis = int((emu.v[-1] != lava["v_last"][:, 1:]).sum())
        batch_ms, per_sample_ms = [], []
        for _ in range(cfg["repeats"]):
            t0 = time.perf_counter()
            em.run(x)
            batch_ms.append(1e3 * (time.perf_counter() - t0))
            t0 = time.perf_counter()
            for b in range(B):
                em.run(x[:, b:b + 1])
            per_sample_ms.append(1e3 * (time.perf_counter() - t0))
        env = environment(torch.device("cpu"))
    lava_ms = 1e3 * lava["timing"]["run_s"]
    results = {"neuroadapt": statistics.median(batch_ms), "neuroadapt_per_sample": statistics.median(per_sample_ms),
               "lava": lava_ms}
    config = dict(cfg)
    config.update(env)
    config.update({
        "network": " -> ".join([str(net.n_inputs)] + [f"{layer.n_out}{'r' if layer.weight_rec is not None else ''}"
                                                        for layer in net.layers]),
        "steps_per_sample": steps,
        "warmup": 1,
        "measure": (f"ms to simulate the same {B} samples x {steps} steps: lava = Lava's run calls inside its "
                    "process after one warm-up sample (build/compile excluded); neuroadapt = median of "
                    f"{cfg['repeats']} emulator calls on the whole batch; neuroadapt_per_sample = one call per "
                    "sample"),
        "lava_build_ms": 1e3 * lava["timing"]["build_s"],
        "stats_ms": {"neuroadapt": summarize(batch_ms), "neuroadapt_per_sample": summarize(per_sample_ms)},
        "spike_mismatches": mismatches,
        "voltage_mismatches": v_mis,
        "spikes_identical": mismatches == 0 and v_mis == 0,
        "spikes_compared": int(sum(s.size for s in emu.spikes)),
        "hidden_spike_rate": float(np.mean([s.mean() for s, layer in zip(emu.spikes, net.layers) if layer.spiking])),
    })
    ratios = {"lava_over_neuroadapt": lava_ms / results["neuroadapt"],
              "lava_over_neuroadapt_per_sample": lava_ms / results["neuroadapt_per_sample"]}
    return {"bench": NAME, "config": config, "results_ms": results, "ratios": ratios}
