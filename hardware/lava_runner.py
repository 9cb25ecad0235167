"""Run a netx HDF5 network in Lava's bit-accurate CPU models; talk only through files.

Runs under the side environment's Python 3.10 (``python hardware/lava_env.py`` builds it); it
imports nothing from neuroadapt.  neuroadapt (``neuroadapt.export.loihi.lava``) calls::

    <lava-venv>/bin/python hardware/lava_runner.py --net network.net --inputs in.npy \
        --steps S --out OUTDIR [--input-message-bits N]

* ``in.npy``: input spikes ``(T, B, n_inputs)`` (0/1, or spike counts with
  ``--input-message-bits N``: graded spikes); each sample is fed for ``S`` steps (zeros after its
  ``T``) through a ``RingBuffer`` into ``netx.hdf5.Network(net, input_message_bits=N)``;
* the network runs with ``Loihi2SimCfg(select_tag="fixed_pt")`` (``PyLifModelBitAcc``,
  ``PyDenseModelBitAcc``), compiled once; between samples every neuron's ``u``, ``v`` and every
  ``Dense``'s ``a_buff`` are set back to 0, so each sample starts from the reset state;
* written to OUTDIR: ``spikes_<i>.npy`` uint8 ``(S, B, n_i)`` for every layer ``i`` (0-based
  over the network's layers, Lava step - 1 on the time axis), ``v_last.npy`` int64 ``(S, B, n)``
  (the last layer's voltage, read by a ``Monitor``), and ``timing.json`` (``build_s``: building
  and compiling; ``run_s``: running all samples; ``samples``; ``steps``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--net", required=True)
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--input-message-bits", type=int, default=0,
                    help="0: unary input spikes; N > 0: graded input spikes (spike counts) of N bits")
    args = ap.parse_args(argv)

    from lava.lib.dl import netx
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.monitor.process import Monitor

    x = np.load(args.inputs)
    if x.ndim != 3:
        sys.exit(f"error: {args.inputs}: expected (T, B, n_inputs), got shape {x.shape}")
    T, B, n_in = x.shape
    S = int(args.steps)
    if S < T:
        sys.exit(f"error: --steps {S} is shorter than the input ({T} steps)")

    def sample(b: int) -> np.ndarray:
        data = np.zeros((n_in, S), dtype=np.int32)
        data[:, :T] = x[:, b, :].T
        return data

    t0 = time.perf_counter()
    net = netx.hdf5.Network(net_config=args.net, input_message_bits=args.input_message_bits)
    if net.inp.shape != (n_in,):
        sys.exit(f"error: the network takes input shape {net.inp.shape}, the inputs have {n_in} channels")
    src = Source(data=sample(0))
    src.s_out.connect(net.inp)
    sinks = []
    for layer in net.layers:
        sink = Sink(shape=layer.out.shape, buffer=S)
        layer.out.connect(sink.a_in)
        sinks.append(sink)
    mon = Monitor()
    mon.probe(target=net.layers[-1].neuron.v, num_steps=S * B)
    cfg = Loihi2SimCfg(select_tag="fixed_pt")

    state_vars = []
    for layer in net.layers:
        state_vars += [layer.neuron.u, layer.neuron.v]
        for syn_name in ("synapse", "synapse_rec"):
            syn = getattr(layer, syn_name, None)
            if syn is not None:
                state_vars.append(syn.a_buff)

    spikes = [np.zeros((S, B) + tuple(layer.out.shape), np.uint8) for layer in net.layers]
    build_s = run_s = 0.0
    try:
        for b in range(B):
            if b > 0:
                for var in state_vars:
                    var.set(np.zeros(var.shape, dtype=np.int32))
                src.data.set(sample(b))
            t1 = time.perf_counter()
            net.run(condition=RunSteps(num_steps=S), run_cfg=cfg)
            t2 = time.perf_counter()
            if b == 0:
                build_s = t2 - t0  # construction + compilation + the first sample
            else:
                run_s += t2 - t1
            for i, sink in enumerate(sinks):
                spikes[i][:, b] = np.asarray(sink.data.get()).T.astype(np.uint8)
        v = mon.get_data()
        key = next(iter(v))
        v_last = np.asarray(v[key][next(iter(v[key]))]).reshape(B, S, -1).transpose(1, 0, 2)
    finally:
        net.stop()
    os.makedirs(args.out, exist_ok=True)
    for i, s in enumerate(spikes):
        np.save(os.path.join(args.out, f"spikes_{i}.npy"), s)
    np.save(os.path.join(args.out, "v_last.npy"), np.rint(v_last).astype(np.int64))
    with open(os.path.join(args.out, "timing.json"), "w") as fh:
        json.dump({"build_s": build_s, "run_s": run_s, "samples": B, "steps": S,
                   "run_samples": max(B - 1, 0)}, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
