"""``neuroadapt export RUN_DIR --to loihi``: Loihi formats, lava-dl netx HDF5, bit-exact emulation.

* :mod:`~neuroadapt.export.loihi.quantise`: float layers -> Loihi's integer formats (8-bit weight
  mantissa, 12-bit decays, 17-bit threshold mantissa, 13-bit bias, 24-bit state);
* :mod:`~neuroadapt.export.loihi.netx`: the netx HDF5 file ``network.net`` (writer and reader);
* :mod:`~neuroadapt.export.loihi.emulator`: a NumPy emulator of Lava's bit-accurate CUBA models;
* :mod:`~neuroadapt.export.loihi.lava`: runs the file in Lava (``Loihi2SimCfg(select_tag="fixed_pt")``)
  in the Python 3.10 side environment built by ``hardware/lava_env.py``.

With ``verify`` the export reports ``spike_mismatches`` (every layer's spikes and the readout's
voltage, emulator vs Lava, on the first ``$NEUROADAPT_LOIHI_LAVA_SAMPLES`` verification samples,
default 128, ``all`` for all), and the accuracy of the float model and of the integer network
(emulator) on all verification samples, with the drop in points.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from neuroadapt.errors import ConfigError, ShapeError
from neuroadapt.export.loihi.emulator import (EmulatorResult, aligned, check_inputs, emulate, input_message_bits,
                                              readout_logits, simulate_exact)
from neuroadapt.export.loihi.netx import read_netx, write_netx
from neuroadapt.export.loihi.quantise import LoihiLayer, LoihiNet, quantise_model

__all__ = ["export_model", "verify_network", "compare_with_lava", "quantise_model", "write_netx", "read_netx",
           "emulate", "readout_logits", "LoihiNet", "LoihiLayer", "NETWORK_FILE"]

NETWORK_FILE = "network.net"
ENV_LAVA_SAMPLES = "NEUROADAPT_LOIHI_LAVA_SAMPLES"
DEFAULT_LAVA_SAMPLES = 128


def _lava_samples(total: int) -> int:
    raw = os.environ.get(ENV_LAVA_SAMPLES, "").strip().lower()
    if raw in ("", None):
        return min(total, DEFAULT_LAVA_SAMPLES)
    if raw == "all":
        return total
    try:
        n = int(raw)
    except ValueError:
        raise ConfigError(f"${ENV_LAVA_SAMPLES}={raw!r}: use a positive number or 'all'") from None
    if n <= 0:
        raise ConfigError(f"${ENV_LAVA_SAMPLES}={raw!r}: use a positive number or 'all'")
    return min(total, n)


def _layer_summary(layer: LoihiLayer) -> dict:
    w = layer.weight if layer.weight_rec is None else np.hstack([layer.weight, layer.weight_rec])
    return {"name": layer.name, "type": "dense_rec" if layer.weight_rec is not None else "dense",
            "in": layer.n_in, "out": layer.n_out, "spiking": layer.spiking, "scale": layer.scale,
            "iDecay": layer.i_decay, "vDecay": layer.v_decay, "vThMant": layer.v_th_mant,
            "weight_min": int(w.min()), "weight_max": int(w.max()),
            "bias_min": int(layer.bias.min()), "bias_max": int(layer.bias.max())}


def compare_with_lava(net: LoihiNet, net_path, x: np.ndarray, emu: EmulatorResult | None = None) -> dict:
    """Run ``net_path`` in Lava on spikes ``x`` (T, B, N) and count where it differs from the
    emulator: spikes of every layer at every step, and the readout's voltage."""
    from neuroadapt.export.loihi.lava import run_lava

    t0 = time.perf_counter()
    if emu is None:
        emu = emulate(net, x)
    emu_s = time.perf_counter() - t0
    lava = run_lava(net_path, x, steps=emu.n_steps)
    per_layer = {}
    total = 0
    for layer, mine, theirs in zip(net.layers, emu.spikes, lava["spikes"]):
        theirs = theirs.reshape(mine.shape)
        n = int((mine != theirs).sum())
        per_layer[layer.name] = n
        total += n
    v_mis = int((emu.v[-1] != lava["v_last"].reshape(emu.v[-1].shape)).sum())
    return {"spike_mismatches": total, "spike_mismatches_per_layer": per_layer, "voltage_mismatches": v_mis,
            "spikes_compared": int(sum(s.size for s in emu.spikes)),
            "lava_samples": int(x.shape[1]), "lava_steps_per_sample": int(emu.n_steps),
            "lava_build_s": lava["timing"]["build_s"], "lava_run_s": lava["timing"]["run_s"],
            "emulator_s": emu_s}


def verify_network(model, net: LoihiNet, net_path, inputs, labels=None, exact: LoihiNet | None = None) -> dict:
    """Float model vs integer network (accuracy) and emulator vs Lava (bit-exactness)."""
    import torch

    x = check_inputs(inputs, net.n_inputs, "Loihi verification")
    T, B, _ = x.shape
    rep = {"verify_samples": int(B), "steps": int(T), "input_message_bits": input_message_bits(x)}
    t0 = time.perf_counter()
    emu = emulate(net, x)
    rep["emulator_s_all"] = time.perf_counter() - t0
    fixed = readout_logits(net, emu, T)
    with torch.no_grad():
        flt = model(torch.as_tensor(x, dtype=torch.get_default_dtype())).double().cpu().numpy()
    v_ro = emu.v[-1]
    rep["readout_saturated"] = int((np.abs(v_ro) >= 2 ** 23 - 1).sum() + emu.spikes[-1].sum())
    rates = {}
    for i, (layer, s) in enumerate(zip(net.layers, emu.spikes)):
        if layer.spiking:
            rates[layer.name] = float(aligned(net, s, i, T).mean())
    rep["fixed_spike_rate"] = rates
    if labels is not None:
        y = labels.detach().cpu().numpy() if hasattr(labels, "detach") else np.asarray(labels)
        y = y.reshape(-1)
        if y.shape[0] != B:
            raise ShapeError(f"Loihi verification: {y.shape[0]} labels for {B} samples")
        rep["float_accuracy"] = float((flt.argmax(1) == y).mean())
        rep["fixed_accuracy"] = float((fixed.argmax(1) == y).mean())
        rep["accuracy_drop_points"] = 100.0 * (rep["float_accuracy"] - rep["fixed_accuracy"])
        if exact is not None:
            # Loihi's semantics (zero reset at the spike, delays, bias on v) without its rounding:
            # splits the drop into semantics (float -> this) and rounding (this -> fixed)
            twin = readout_logits(exact, simulate_exact(exact, x), T)
            rep["loihi_semantics_float_accuracy"] = float((twin.argmax(1) == y).mean())
    rep["prediction_agreement"] = float((flt.argmax(1) == fixed.argmax(1)).mean())
    n_lava = _lava_samples(B)
    if n_lava:
        sub = x[:, :n_lava]
        emu_sub = EmulatorResult(spikes=[s[:, :n_lava] for s in emu.spikes],
                                 v=[None if v is None else v[:, :n_lava] for v in emu.v], n_steps=emu.n_steps)
        rep.update(compare_with_lava(net, net_path, sub, emu_sub))
        t0 = time.perf_counter()
        emulate(net, sub)
        rep["emulator_s"] = time.perf_counter() - t0
    return rep


def export_model(model, out_dir, *, dt, verify=False, inputs=None, labels=None) -> dict:
    """Quantise ``model``, write ``out_dir/network.net`` (lava-dl netx HDF5) and, with ``verify``,
    compare float vs fixed point and the emulator vs Lava (see the module docstring)."""
    net = quantise_model(model)
    T = int(inputs.shape[0]) if inputs is not None else None
    path = Path(out_dir) / NETWORK_FILE
    write_netx(net, path, t_sample=T)
    report = {"files": [NETWORK_FILE], "format": "lava-dl netx HDF5 (dense/dense_rec, CUBA)",
              "layers": [_layer_summary(layer) for layer in net.layers], "mapping": net.notes,
              "readout": "non-spiking CUBA compartment (iDecay 4096, vThMant 131071); logits = "
                         f"{net.readout_mode} over time of its voltage / (64 * scale)",
              "synaptic_delay_steps": net.delay, "dt": float(dt)}
    if verify:
        if inputs is None:
            raise ConfigError("Loihi export --verify needs verification inputs (the run's test split)")
        report.update(verify_network(model, net, path, inputs, labels, exact=quantise_model(model, exact=True)))
    return report
