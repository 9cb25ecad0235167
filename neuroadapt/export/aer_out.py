"""Events out: a model's recorded spikes as AER streams, tonic arrays and SHD files.

``neuroadapt export RUN_DIR --to aer`` runs the model on the run's test inputs, records the input
spikes and every spiking layer's spikes, and writes for each of them (``<layer>`` is the module
path with dots as underscores; ``input`` is the stimulus):

* ``<layer>.spinnaker.aer`` -- SpiNNaker-style multicast keys ``x | y | p | n`` (8+8+5+11 bits,
  256 neurons per core, application cores 1..16; :class:`~neuroadapt.data.aer_layouts.SpiNNakerLayout`);
* ``<layer>.loihi.aer`` -- Loihi-style per-core addresses ``chip | core | neuron`` (1024 neurons
  per core, 128 cores per chip; :class:`~neuroadapt.data.aer_layouts.LoihiLayout`);
* ``<layer>.tonic.npy`` -- events with tonic's SHD fields ``t`` (µs), ``x`` (neuron), ``p`` (1),
  preceded by a ``sample`` field; :func:`tonic_samples` splits it into one tonic array per sample;
* ``<layer>.shd.h5`` -- the SHD HDF5 layout (times in s, units uint16, the labels), skipped
  for layers wider than 65 536 neurons. Times are float64 (the published files use float16, whose
  rounding would move spikes across step boundaries).

Spike ``k`` of a sample happens at ``k * dt`` (the start of step ``k``); AER time stamps are µs
(``tick_ns = 1000``), samples follow each other on one time line (the AER sample table says
where each starts) and the metadata records ``dt``, ``n_steps`` and the layer's shape (neurons
are numbered in C order of the layer's shape, e.g. ``(C, H, W)`` for a convolution).
``verify=True`` reads every file back and counts entries that differ from the recorded spikes.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from neuroadapt._io import atomic_path
from neuroadapt.data.aer import read_aer, write_aer
from neuroadapt.data.event_conversions import _events_of, dense_to_events, events_to_dense_batch
from neuroadapt.data.shd import read_shd
from neuroadapt.data.shd_write import write_shd
from neuroadapt.data.tonic_events import TONIC_DTYPE, _dt_us, dense_to_tonic, tonic_to_dense
from neuroadapt.errors import DataError, InvalidInputError, ShapeError

__all__ = ["record_spikes", "write_events", "read_events", "tonic_samples", "export_model", "NEEDS_INPUTS",
           "FORMATS"]

#: the engine hands this target the run's test inputs even without ``--verify``
NEEDS_INPUTS = True
FORMATS = ("spinnaker", "loihi", "tonic", "shd")
SHD_MAX_CHANNELS = 65536
_SAMPLE_TONIC = np.dtype([("sample", np.int64)] + [(n, TONIC_DTYPE[n]) for n in TONIC_DTYPE.names])


def record_spikes(model: nn.Module, inputs: torch.Tensor, *, include_input: bool = True) -> dict:
    """Run ``model`` on ``inputs`` ``(T, B, ...)`` and return ``{layer name: spikes (T, B, ...)}``
    for every spiking layer (neuroadapt ``LIFLayer`` / ``SpikingClassifier`` layers, snnTorch
    neurons), in network order, plus ``"input"``."""
    import snntorch as snn

    from neuroadapt.engine.models import SpikingClassifier
    from neuroadapt.nn.layers import LIFLayer

    if not torch.is_tensor(inputs) or inputs.dim() < 3:
        raise ShapeError(f"events export: inputs must be a time-major tensor (T, B, ...), got "
                         f"{getattr(inputs, 'shape', type(inputs).__name__)}")
    x = inputs.to(next(model.parameters()).dtype) if any(True for _ in model.parameters()) else inputs
    out = {"input": inputs.detach()} if include_input else {}
    model.eval()
    with torch.no_grad():
        if isinstance(model, SpikingClassifier):
            _, trace = model(x, record=True)
            out.update({f"layers.{i}": s for i, (s, _) in enumerate(trace["hidden"])})
            return out
        layers = [(n, m) for n, m in model.named_modules() if isinstance(m, LIFLayer)]
        bare = [(n, m) for n, m in model.named_modules() if isinstance(m, snn.SpikingNeuron)
                and not any(n.startswith(ln + ".") for ln, _ in layers)]
        rec: dict[str, list] = {}

        def hook(name):
            return lambda _m, _i, o: rec.setdefault(name, []).append(o[0] if isinstance(o, tuple) else o)

        handles = [m.register_forward_hook(hook(n or "layer")) for n, m in (bare or layers)]
        try:
            if bare:
                from snntorch import utils as snn_utils

                snn_utils.reset(model)
                for t in range(x.shape[0]):
                    model(x[t])
                out.update({n: torch.stack(v) for n, v in rec.items()})
            else:
                model(x)
                out.update({n: v[0] for n, v in rec.items()})
        finally:
            for h in handles:
                h.remove()
    return out


def _counts(name: str, spikes) -> np.ndarray:
    s = spikes.detach().cpu().numpy() if torch.is_tensor(spikes) else np.asarray(spikes)
    if s.ndim < 3:
        raise ShapeError(f"events export: layer {name!r} spikes must be (T, B, ...), got shape {s.shape}")
    flat = s.reshape(s.shape[0], s.shape[1], -1)
    if not np.isfinite(flat).all() or (flat < 0).any() or (flat != np.round(flat)).any():
        raise InvalidInputError(f"events export: layer {name!r} holds values that are not spike counts "
                                f"(non-negative integers); graded outputs cannot become events")
    return flat.astype(np.int64)


def _file_stem(name: str) -> str:
    return name.replace(".", "_").replace("/", "_") or "layer"


def write_events(spikes: dict, out_dir, dt: float, *, labels=None, formats=FORMATS) -> dict:
    """Write each layer of ``spikes`` (``{name: (T, B, ...)}``) in ``formats``; returns
    ``{name: {"shape", "neurons", "spikes", "files": {format: file name}}}``.  Files are written
    atomically."""
    from pathlib import Path

    out_dir = Path(out_dir)
    dt_us = _dt_us(dt)
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise InvalidInputError(f"unknown event format(s) {bad}; choose from {', '.join(FORMATS)}")
    all_counts = {name: _counts(name, s) for name, s in spikes.items()}  # check everything before writing
    stems = [_file_stem(n) for n in spikes]
    if len(set(stems)) != len(stems):
        raise InvalidInputError(f"events export: layer names {list(spikes)} collide as file names")
    report = {}
    for name, s in spikes.items():
        counts = all_counts[name]
        T, B, N = counts.shape
        lab = np.zeros(B, np.int64) if labels is None else np.asarray(labels).astype(np.int64).reshape(-1)
        if len(lab) != B:
            raise ShapeError(f"events export: {len(lab)} labels for {B} samples")
        stem = _file_stem(name)
        meta = {"layer": name, "shape": [int(v) for v in np.shape(s)[2:]], "n_steps": int(T), "dt": float(dt),
                "source": "neuroadapt export --to aer"}
        files = {}
        per_sample = [_events_of(counts[:, b, :]) for b in range(B)]  # (step, neuron), time then neuron order
        ticks = [k * dt_us for k, _ in per_sample]
        ids = [n for _, n in per_sample]
        for lay in ("spinnaker", "loihi"):
            if lay in formats:
                fn = f"{stem}.{lay}.aer"
                write_aer(out_dir / fn, ticks, ids, layout=lay, tick_ns=1000, n_channels=N, labels=lab,
                          meta={**meta, "layout": lay})
                files[lay] = fn
        if "tonic" in formats:
            evs = dense_to_tonic(counts, dt)
            arr = np.empty(sum(len(e) for e in evs), dtype=_SAMPLE_TONIC)
            arr["sample"] = np.repeat(np.arange(B), [len(e) for e in evs])
            for f in TONIC_DTYPE.names:
                arr[f] = np.concatenate([e[f] for e in evs]) if evs else np.zeros(0, np.int64)
            fn = f"{stem}.tonic.npy"
            with atomic_path(out_dir / fn, suffix=".npy") as tmp, open(tmp, "wb") as fh:
                np.save(fh, arr, allow_pickle=False)
            files["tonic"] = fn
        if "shd" in formats and N <= SHD_MAX_CHANNELS:
            ev = dense_to_events(counts, dt)
            fn = f"{stem}.shd.h5"
            write_shd(out_dir / fn, [t for t, _ in ev], [u for _, u in ev], lab, n_channels=N,
                      times_dtype=np.float64)
            files["shd"] = fn
        report[name] = {"shape": meta["shape"], "neurons": int(N), "spikes": int(counts.sum()), "files": files}
        if "shd" in formats and N > SHD_MAX_CHANNELS:
            report[name]["shd_skipped"] = f"{N} neurons > {SHD_MAX_CHANNELS} (SHD units are uint16)"
    return report


def tonic_samples(path) -> list[np.ndarray]:
    """One tonic event array (``t`` µs, ``x``, ``p``) per sample of a ``<layer>.tonic.npy`` file."""
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path} as a tonic .npy file ({exc})") from None
    if arr.dtype != _SAMPLE_TONIC:
        raise DataError(f"{path}: dtype {arr.dtype}, expected {_SAMPLE_TONIC}")
    n = int(arr["sample"].max()) + 1 if len(arr) else 0
    out = []
    for i in range(n):
        sel = arr[arr["sample"] == i]
        ev = np.empty(len(sel), dtype=TONIC_DTYPE)
        for f in TONIC_DTYPE.names:
            ev[f] = sel[f]
        out.append(ev)
    return out


def read_events(out_dir, name: str, fmt: str, *, n_steps: int, dt: float, n_samples: int, n_neurons: int):
    """Read one written file back as dense counts ``(n_steps, n_samples, n_neurons)``."""
    from pathlib import Path

    path = Path(out_dir) / f"{_file_stem(name)}.{'shd.h5' if fmt == 'shd' else 'tonic.npy' if fmt == 'tonic' else fmt + '.aer'}"
    if fmt in ("spinnaker", "loihi"):
        aer = read_aer(path)
        if aer.layout.name != fmt or aer.n_samples != n_samples:
            raise DataError(f"{path}: layout {aer.layout.name}, {aer.n_samples} samples; expected {fmt}, {n_samples}")
        dt_us = _dt_us(dt)
        dense = np.zeros((n_steps, n_samples, n_neurons), np.int64)
        for b, (k, ids) in enumerate(aer.samples()):
            if len(k) and ((k % dt_us).any() or k.max() >= n_steps * dt_us):
                raise DataError(f"{path}: sample {b} has time stamps off the {dt_us} µs grid or past the end")
            np.add.at(dense, (k // dt_us, b, ids), 1)
        return dense
    if fmt == "tonic":
        evs = tonic_samples(path)
        evs += [np.empty(0, TONIC_DTYPE)] * (n_samples - len(evs))
        return np.stack([tonic_to_dense(e, n_neurons, dt, n_steps, dtype=np.int64) for e in evs], axis=1)
    if fmt == "shd":
        c = read_shd(path, n_channels=n_neurons)
        return events_to_dense_batch([t.astype(np.float64) for t in c.times], c.units, n_neurons, dt, n_steps,
                                     dtype=np.int64)
    raise InvalidInputError(f"unknown event format {fmt!r}")


def export_model(model, out_dir, *, dt, verify=False, inputs=None, labels=None) -> dict:
    """``neuroadapt export --to aer`` (module docstring)."""
    if inputs is None:
        raise InvalidInputError("events export: needs input spikes (T, B, ...) to run the model on")
    spikes = record_spikes(model, torch.as_tensor(inputs))
    note = {}
    if not _is_spikes(spikes.get("input")):
        spikes.pop("input", None)  # a real-valued stimulus is not an event stream
        note["input_skipped"] = "the inputs are not spike counts (non-negative integers)"
    if len(spikes) == 0:
        raise InvalidInputError("events export: the model has no spiking layer to record")
    layers = write_events(spikes, out_dir, dt, labels=labels)
    T, B = next(iter(spikes.values())).shape[:2]
    report = {"files": sorted(f for v in layers.values() for f in v["files"].values()),
              "samples": int(B), "steps": int(T), "layers": layers, **note,
              "spike_count": int(sum(v["spikes"] for k, v in layers.items() if k != "input"))}
    if verify:
        mism, per = 0, {}
        for name, info in layers.items():
            want = _counts(name, spikes[name])
            for fmt in info["files"]:
                got = read_events(out_dir, name, fmt, n_steps=T, dt=dt, n_samples=B, n_neurons=info["neurons"])
                d = int((got != want).sum())
                per[info["files"][fmt]] = d
                mism += d
        report["round_trip"] = per
        report["spike_mismatches"] = mism
    return report


def _is_spikes(x) -> bool:
    if x is None:
        return False
    a = x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)
    return bool(np.isfinite(a).all() and (a >= 0).all() and (a == np.round(a)).all())
