"""``neuroadapt export RUN_DIR --to spinnaker``: a PyNN model for SpiNNaker, verified on NEST.

:func:`export_model` writes ``network.json`` + ``connections.npz`` + ``run_pynn.py`` (see
:mod:`.script`), with the routing keys of every population in ``network.json["routing"]``
(:mod:`.keys`). Before anything is written, every parameter is converted to SpiNNaker's s16.15
format (:mod:`.fixed`); a value that does not fit raises
:class:`~neuroadapt.errors.InvalidInputError` and leaves ``out_dir`` empty.

With ``verify=True`` the same input spikes run through (1) neuroadapt's own model, (2) the PyNN
script on NEST (in a subprocess) and (3) the s16.15 emulator and its float64 twin; the report gives
per-layer spike coincidence (:mod:`.compare`, one-to-one matches within ``tol_ms``) of NEST and of the
emulator against neuroadapt, the emulator's agreement with its float twin, the readout membrane
error and the classification accuracy of each.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from neuroadapt.errors import ShapeError
from neuroadapt.export.spinnaker.compare import coincidence, raster_times
from neuroadapt.export.spinnaker.convert import build_network, decay_from_tau, expand_counts, tau_from_decay
from neuroadapt.export.spinnaker.fixed import Emulator
from neuroadapt.export.spinnaker.keys import routing_table
from neuroadapt.export.spinnaker.runner import nest_available, run_pynn
from neuroadapt.export.spinnaker.script import write_files

__all__ = ["export_model", "build_network", "tau_from_decay", "decay_from_tau", "verify_network", "nest_available"]


def _rows_to_times(rows: np.ndarray, lag: int, h: float, T: int) -> dict:
    out: dict = {}
    for b, n, k in np.asarray(rows).reshape(-1, 3):
        t = int(k) - lag
        if t < T:  # steps after the input ended have no reference counterpart
            out.setdefault((int(b), int(n)), []).append(t * h)
    return out


def _accuracy(logits: np.ndarray, labels) -> float | None:
    if labels is None:
        return None
    return float((np.asarray(logits).argmax(-1) == np.asarray(labels)).mean())


NEST_NODES_PER_CHUNK = 8192  #: largest population (all replicas) one NEST chunk should hold


def auto_chunk(net) -> int:
    """Samples per NEST run: PyNN 0.13 on NEST 3.10 reads the whole presynaptic population's node ids
    once per post-synaptic neuron while connecting, so building costs ~ replicas x population size
    per neuron; keeping the largest population of a chunk near ``NEST_NODES_PER_CHUNK`` keeps it
    linear in the number of samples (measured: 8 spoken-digit samples, 2800 input sources, in 29 s
    with 2 per chunk against 459 s with 8)."""
    biggest = max(p.size for p in net.populations)
    return int(min(32, max(1, NEST_NODES_PER_CHUNK // max(biggest, 1))))


def verify_network(model, net, inputs, labels=None, *, export_dir=None, tol_ms: float = 1.0,
                   run_nest: bool = True, chunk: int | None = None) -> dict:
    """Compare neuroadapt's run of ``model`` on ``inputs`` (T, B, n_in) with NEST (running the exported
    script in ``export_dir``) and the s16.15 emulator. Returns the report section."""
    x = torch.as_tensor(inputs)
    if x.ndim != 3:
        raise ShapeError(f"verification inputs must be time-major (T, B, n_inputs), got shape {tuple(x.shape)}")
    x = x.to(next(model.parameters()).dtype)
    spikes_in = expand_counts(x.numpy(), net.input_copies)  # refuses graded values and counts > input_copies
    with torch.no_grad():
        logits, rec = model(x, record=True)
    T, B = x.shape[:2]
    h = net.h_ms
    ref = {f"hidden{i}": raster_times(s.numpy(), h) for i, (s, _) in enumerate(rec["hidden"])}
    ref_v = rec["readout"].double().numpy()
    ref_logits = logits.double().numpy()
    report = {"samples": int(B), "steps": int(T), "tol_ms": tol_ms,
              "reference": {"accuracy": _accuracy(ref_logits, labels),
                            "spikes": {k: sum(len(v) for v in d.values()) for k, d in ref.items()}}}

    def readout_stats(v_mv, who):  # v_mv: (T, B, n) in mV, on the reference's time axis
        v = v_mv / net.v_scale
        lg = v.mean(0) if getattr(model, "readout_mode", "mean") == "mean" else v.max(0)
        return {"readout_max_abs_err": float(np.abs(v - ref_v).max()), "accuracy": _accuracy(lg, labels),
                "argmax_agreement": float((lg.argmax(-1) == ref_logits.argmax(-1)).mean()), "who": who}

    em = Emulator(net)
    runs = {"fixed": em.run(spikes_in, fixed=True), "float": em.run(spikes_in, fixed=False)}
    emu = {}
    for kind, res in runs.items():
        lags = res["lags"]
        layers = {lab: coincidence(ref[lab], raster_times(res[lab][lags[lab]:lags[lab] + T], h), tol_ms) for lab in ref}
        r = readout_stats(res["v_readout"][lags["readout"]:lags["readout"] + T], f"emulator-{kind}")
        r.pop("who")
        emu[kind] = {"layers": layers, **r}
    fx, fl = runs["fixed"], runs["float"]
    lg = fx["lags"]
    win = {lab: slice(lg[lab], lg[lab] + T) for lab in lg}  # the steps compared with neuroadapt
    emu["fixed_vs_float"] = {
        "layers": {lab: coincidence(raster_times(fl[lab][win[lab]], h), raster_times(fx[lab][win[lab]], h), 0.0)
                   for lab in ref},
        "readout_v_max_abs_diff_mv": float(np.abs(fx["v_readout"][win["readout"]] - fl["v_readout"][win["readout"]]).max())}
    report["emulator"] = emu
    if run_nest:
        if chunk is None:
            chunk = auto_chunk(net)
        report["nest_chunk"] = int(chunk)
        res = run_pynn(export_dir, x.numpy().astype(np.uint8), chunk=chunk)  # counts: the script expands them
        nest = {"layers": {}}
        for p in net.populations:
            if p.role == "hidden":
                got = _rows_to_times(res.get(f"spikes_{p.label}", np.zeros((0, 3))), p.lag, h, T)
                nest["layers"][p.label] = coincidence(ref[p.label], got, tol_ms)
            elif p.role == "readout":
                v = res[f"v_{p.label}"][:, p.lag:p.lag + T].transpose(1, 0, 2)
                r = readout_stats(v, "nest")
                r.pop("who")
                nest.update(r)
                nest["readout_spikes"] = int(len(res.get(f"spikes_{p.label}", [])))
        tot = {k: sum(d[k] for d in nest["layers"].values()) for k in ("n_ref", "n_test", "matched")}
        nest["all_layers"] = {**tot, "coincidence": 1.0 if tot["n_ref"] + tot["n_test"] == 0 else
                              2 * tot["matched"] / (tot["n_ref"] + tot["n_test"])}
        report["nest"] = nest
    return report


def export_model(model, out_dir, *, dt, verify=False, inputs=None, labels=None, v_scale: float = 10.0,
                 subtract: str = "reset", fir_steps: int = 0, input_copies: int | None = None, tol_ms: float = 1.0,
                 run_nest: bool = True, chunk: int | None = None) -> dict:
    """Export ``model`` (a SpikingClassifier) for SpiNNaker into ``out_dir``; see the module docstring.

    ``v_scale``: mV per unit of the model's membrane (threshold 1 -> 10 mV above rest by default).
    ``subtract``/``fir_steps``: mapping of subtract-reset layers (:func:`build_network`; ``"fir"`` is
    exact for inputs of at most ``fir_steps`` steps). ``run_nest=False`` skips the NEST run in
    verification (emulator only); ``chunk``: samples per NEST run (``None``: :func:`auto_chunk`).
    ``input_copies``: source neurons per input channel, i.e. the most
    spikes a channel may carry in one step (inputs of spike counts; ``None``: the largest count in
    ``inputs``, 1 without inputs)."""
    out_dir = Path(out_dir)
    if input_copies is None:
        input_copies = 1
        if inputs is not None:
            counts = np.asarray(torch.as_tensor(inputs).detach().cpu().numpy())
            if counts.size and np.all(np.isfinite(counts)):
                input_copies = max(1, int(np.ceil(counts.max())))
    net = build_network(model, float(dt), v_scale=v_scale, subtract=subtract, fir_steps=fir_steps,
                        input_copies=input_copies)
    Emulator(net)  # every parameter in s16.15 before anything is written (overflow raises here)
    keys = routing_table([(p.label, p.size) for p in net.populations])
    net.notes = {"neuron_mapping": {p.label: p.cell for p in net.populations},
                 "lags_steps": {p.label: p.lag for p in net.populations},
                 "subtract_reset_approximated": any(float(np.min(p.params.get("v_reset", [0]))) < 0
                                                   for p in net.populations if p.role == "hidden")}
    staging = out_dir / ".staging"  # files move to out_dir only when everything (incl. verification) succeeded
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        files = write_files(net, staging, keys)
        report = {"files": files, "neurons": {p.label: p.cell for p in net.populations}, "subtract_mapping": subtract,
                  "input_copies": int(net.input_copies),
                  "lags_steps": net.notes["lags_steps"], "v_scale_mv": v_scale,
                  "synapses": int(sum(len(q.rows) for q in net.projections))}
        if verify:
            if inputs is None:
                raise ShapeError("verify=True needs input spikes (T, B, n_inputs)")
            report["verification"] = verify_network(model, net, inputs, labels, export_dir=staging, tol_ms=tol_ms,
                                                    run_nest=run_nest, chunk=chunk)
            v = report["verification"]
            if "nest" in v:
                report["spike_coincidence"] = v["nest"]["all_layers"]["coincidence"]
                report["spike_mismatches"] = (v["nest"]["all_layers"]["n_ref"] + v["nest"]["all_layers"]["n_test"]
                                              - 2 * v["nest"]["all_layers"]["matched"])
        for f in files:
            (staging / f).rename(out_dir / f)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report
