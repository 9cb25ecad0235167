"""Write an exported network as a standalone PyNN script plus its data files.

Files (all in the export folder):

* ``network.json``: time step, populations (cell type, per-neuron parameters in PyNN units,
  initial ``v``, lag), projections (pre, post, receptor) and the routing keys;
* ``connections.npz``: one ``(n, 4)`` array ``proj_<i>`` of FromListConnector rows
  ``(pre, post, weight, delay)`` per projection (weights in mV for ``IF_curr_delta``, nA for
  ``IF_curr_exp``; inhibitory weights negative; delays in ms);
* ``run_pynn.py``: builds the network with any PyNN backend (``--simulator nest``), feeds
  ``SpikeSourceArray`` inputs from an ``inputs.npz`` (``spikes``: (T, B, n_in) spike counts, at most
  ``input_copies`` per step), and saves
  every population's spikes (and the readout's ``v``) to an ``.npz``. It needs only numpy and PyNN.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from neuroadapt._io import atomic_path

__all__ = ["write_files", "network_to_json", "SCRIPT_NAME"]

SCRIPT_NAME = "run_pynn.py"

SCRIPT = r'''#!/usr/bin/env python
"""PyNN model exported by neuroadapt (``neuroadapt export RUN_DIR --to spinnaker``).

    python run_pynn.py --inputs inputs.npz --out result.npz [--simulator nest] [--chunk 32]

``inputs.npz`` holds ``spikes``: a (T, B, n_inputs) raster of spike counts (0/1, or up to
``input_copies`` in network.json) on the network's time step. Channel ``i``'s ``c``-th spike of a step
comes from source neuron ``(c - 1) * n_inputs + i`` (a spike source fires at most once per step). Input step
``t`` is sent at ``(t + input_lag) * dt`` ms; a population's spike at grid step ``k`` stands for the
discrete model's step ``k - lag`` (lags are in network.json). Samples are independent: each of the
``B`` samples in a chunk gets its own replica of the network. Biases are one-neuron
``SpikeSourceArray``s (``bias<i>``) firing on every step, so they start when the inputs do. The result holds, per population,
``spikes_<label>`` rows (sample, neuron, grid step) and ``v_<label>`` (B, steps, n) where recorded.
"""
import argparse
import importlib
import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def build(sim, net, conns, spikes):
    """Populations and projections for ``spikes`` (T, R, n_in): R replicas of the network."""
    T, R, _ = spikes.shape
    h, lag0 = net["h_ms"], net["input_lag"]
    pops = {}
    for p in net["populations"]:
        n = p["size"]
        if p["cell"] == "SpikeSourceArray":
            if p["role"] == "bias":  # fires on every step the layer's inputs can arrive
                times = [[(t + p["lag"]) * h for t in range(T)] for _ in range(n * R)]
            else:  # n = input_copies * n_inputs sources per replica
                times = [[] for _ in range(n * R)]
                n_ch = net["input_channels"]
                for t, r, i in zip(*np.nonzero(spikes)):
                    for c in range(int(spikes[t, r, i])):
                        times[r * n + c * n_ch + i].append((t + lag0) * h)
            pops[p["label"]] = sim.Population(n * R, sim.SpikeSourceArray(
                spike_times=[sim.Sequence(x) for x in times]), label=p["label"])
            continue
        cell = getattr(sim, p["cell"])(**{k: np.tile(np.asarray(v, float), R) for k, v in p["params"].items()})
        pop = sim.Population(n * R, cell, label=p["label"])
        pop.initialize(v=np.tile(np.asarray(p["v_init"], float), R))
        pop.record(["spikes", "v"] if p["record_v"] else "spikes")
        pops[p["label"]] = pop
    sizes = {p["label"]: p["size"] for p in net["populations"]}
    for i, pr in enumerate(net["projections"]):
        rows = conns["proj_%d" % i]
        tiled = np.concatenate([rows + np.array([r * sizes[pr["pre"]], r * sizes[pr["post"]], 0, 0])
                                for r in range(R)])
        sim.Projection(pops[pr["pre"]], pops[pr["post"]], sim.FromListConnector(tiled),
                       sim.StaticSynapse(), receptor_type=pr["receptor"])
    return pops


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--simulator", default="nest")
    ap.add_argument("--chunk", type=int, default=32, help="samples simulated side by side")
    args = ap.parse_args(argv)
    with open(os.path.join(HERE, "network.json")) as fh:
        net = json.load(fh)
    conns = np.load(os.path.join(HERE, "connections.npz"))
    spikes = np.load(args.inputs)["spikes"]
    if spikes.ndim != 3 or spikes.shape[2] != net["input_channels"]:
        raise SystemExit("inputs: expected spikes of shape (T, B, %d), got %s" % (net["input_channels"], spikes.shape))
    if spikes.size and (spikes.min() < 0 or spikes.max() > net["input_copies"]):
        raise SystemExit("inputs: spike counts must lie in 0..%d (input_copies of this export), got %s..%s"
                         % (net["input_copies"], spikes.min(), spikes.max()))
    sim = importlib.import_module("pyNN." + args.simulator)
    kw = {}
    if args.simulator == "nest":
        kw["spike_precision"] = "on_grid"  # SpiNNaker and the discrete model both live on the grid
        if not getattr(sim.IF_curr_delta, "variable_map", None):  # PyNN 0.13 omits it for iaf_psc_delta
            sim.IF_curr_delta.variable_map = {"v": "V_m"}
            sim.IF_curr_delta.scale_factors = {"v": 1}
    h = net["h_ms"]
    T, B, _ = spikes.shape
    steps = T + max(p["lag"] for p in net["populations"]) + 1
    out = {}
    for start in range(0, B, args.chunk):
        part = spikes[:, start:start + args.chunk]
        R = part.shape[1]
        sim.setup(timestep=h, min_delay=h, max_delay=max(2 * h, net["max_delay_ms"]), **kw)
        pops = build(sim, net, conns, part)
        sim.run(steps * h)
        for p in net["populations"]:
            if p["cell"] == "SpikeSourceArray":
                continue
            seg = pops[p["label"]].get_data().segments[-1]
            n = p["size"]
            rows = [(start + j // n, j % n, int(round(float(t) / h)))
                    for j, st in enumerate(seg.spiketrains) for t in st.magnitude]
            out.setdefault("spikes_" + p["label"], []).extend(rows)
            if p["record_v"]:
                v = np.asarray(seg.filter(name="v")[0].magnitude)[:steps]  # (steps, n * R)
                out.setdefault("v_" + p["label"], []).append(v.reshape(steps, R, n).transpose(1, 0, 2))
        sim.end()
    arrays = {k: (np.concatenate(v) if k.startswith("v_") else np.asarray(v, dtype=np.int64).reshape(-1, 3))
              for k, v in out.items()}
    np.savez(args.out, **arrays)


if __name__ == "__main__":
    main()
'''


def network_to_json(net, keys: dict | None = None) -> dict:
    pops = []
    for p in net.populations:
        pops.append({"label": p.label, "size": int(p.size), "cell": p.cell, "role": p.role, "lag": int(p.lag),
                     "record_v": bool(p.record_v),
                     "params": {k: np.asarray(v, dtype=float).tolist() for k, v in p.params.items()},
                     "v_init": None if p.v_init is None else np.asarray(p.v_init, dtype=float).tolist()})
    projs = [{"pre": q.pre, "post": q.post, "receptor": q.receptor, "kind": q.kind, "n": int(len(q.rows))}
             for q in net.projections]
    delays = [float(q.rows[:, 3].max()) for q in net.projections if len(q.rows)]
    return {"format": "neuroadapt-pynn-1", "dt": net.dt, "h_ms": net.h_ms, "v_scale": net.v_scale,
            "max_delay_ms": max(delays, default=net.h_ms),
            "input_lag": next(p.lag for p in net.populations if p.role == "input"),
            "input_channels": int(net.input_channels), "input_copies": int(net.input_copies),
            "populations": pops, "projections": projs, "routing": keys or {}, "notes": net.notes}


def write_files(net, out_dir, keys: dict | None = None) -> list[str]:
    """Write network.json, connections.npz and run_pynn.py into ``out_dir`` (each atomically)."""
    out_dir = Path(out_dir)
    doc = network_to_json(net, keys)
    with atomic_path(out_dir / "network.json") as tmp:
        with open(tmp, "w") as fh:
            json.dump(doc, fh, indent=1)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600
    with atomic_path(out_dir / "connections.npz", suffix=".npz") as tmp:
        np.savez(tmp, **{f"proj_{i}": q.rows for i, q in enumerate(net.projections)})
        os.chmod(tmp, 0o644)
    with atomic_path(out_dir / SCRIPT_NAME) as tmp:
        Path(tmp).write_text(SCRIPT)
        os.chmod(tmp, 0o755)
    return ["network.json", "connections.npz", SCRIPT_NAME]
