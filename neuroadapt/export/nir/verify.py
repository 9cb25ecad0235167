"""Running the source model, Norse and our importer on the same input; the ``nir`` export target.

``export_model`` writes ``model.nir``; with ``verify=True`` it reads the file back and runs it
through :func:`~neuroadapt.export.nir.from_nir` and through Norse's ``norse.torch.from_nir``
(an implementation we did not write), and compares every spiking layer's spikes and the output
with the source model's own run.  Norse 1.1 imports only ``Input, Output, Affine, Linear, Conv2d,
Flatten, IF, LIF, CubaLIF, SumPool2d`` (no ``LI``, ``Threshold``, ``Scale``, ``AvgPool2d``, no nested
graphs), so for graphs with other nodes Norse runs the largest leading sub-graph it can import and
the report says which layers that covered.
"""
from __future__ import annotations

import logging
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch import nn

import nir

from neuroadapt.errors import ShapeError, UnsupportedOptionError
from neuroadapt.export.nir.build import to_nir
from neuroadapt.export.nir.io import read_nir, write_nir
from neuroadapt.export.nir.runtime import from_nir

__all__ = ["export_model", "run_source", "run_norse", "norse_subgraph", "NORSE_NODES"]

NORSE_NODES = (nir.Input, nir.Output, nir.Affine, nir.Linear, nir.Conv2d, nir.Flatten, nir.IF, nir.LIF,
               nir.CubaLIF, nir.SumPool2d)


# ---------------------------------------------------------------------------- the source model
def run_source(model: nn.Module, x: torch.Tensor, info) -> tuple[torch.Tensor, dict]:
    """Run the original model on ``x`` ``(T, B, ...)``: ``(graph output (T, B, ...), {layer: spikes})``
    with the layer names of ``info`` (from ``to_nir(..., return_info=True)``)."""
    from neuroadapt.engine.models import SpikingClassifier
    from neuroadapt.nn.layers import LIFLayer

    hooks, rec = [], {}
    mods = info["modules"]
    seq = all(isinstance(m, LIFLayer) for m in mods.values())  # sequence-level modules only
    step_rec = {k: [] for k in mods}

    def hook(key):
        def fn(_m, _inp, out):
            s = out[0] if isinstance(out, tuple) else out
            (rec.__setitem__(key, s) if seq else step_rec[key].append(s))
        return fn

    for key, m in mods.items():
        hooks.append(m.register_forward_hook(hook(key)))
    try:
        with torch.no_grad():
            if seq:
                if isinstance(model, SpikingClassifier):
                    _, trace = model(x, record=True)
                    out = trace["readout"]
                else:
                    out = model(x)
            else:
                from snntorch import utils as snn_utils

                snn_utils.reset(model)
                outs = []
                for t in range(x.shape[0]):
                    o = model(x[t])
                    outs.append(o[0] if isinstance(o, tuple) else o)
                out = torch.stack(outs)
                rec = {k: torch.stack(v) for k, v in step_rec.items()}
    finally:
        for h in hooks:
            h.remove()
    return out, rec


# ---------------------------------------------------------------------------- Norse
def norse_version() -> str:
    from importlib.metadata import version

    return version("norse")


def _not_norse(graph) -> list[str]:
    return sorted({type(n).__name__ for n in graph.nodes.values() if not isinstance(n, NORSE_NODES)})


def norse_subgraph(graph: nir.NIRGraph, spike_nodes: list[str]):
    """The largest leading part of ``graph`` that Norse can import: ``(sub-graph, covered spike
    nodes)``, ending at the deepest spike node whose upstream nodes are all Norse-importable
    (``(None, [])`` if there is none)."""
    preds: dict[str, list[str]] = {}
    for a, b in graph.edges:
        preds.setdefault(b, []).append(a)

    def upstream(node):
        seen, todo = set(), [node]
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo.extend(preds.get(n, []))
        return seen

    best = None
    for s in spike_nodes:
        up = upstream(s)
        if all(isinstance(graph.nodes[n], NORSE_NODES) and not isinstance(graph.nodes[n], nir.Output) for n in up):
            best = (s, up)
    if best is None:
        return None, []
    s, up = best
    nodes = {n: graph.nodes[n] for n in graph.nodes if n in up}
    nodes["output"] = nir.Output(output_type=np.array(graph.nodes[s].output_type["output"]))
    edges = [(a, b) for a, b in graph.edges if a in up and b in up] + [(s, "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=dict(graph.metadata), type_check=False), \
        [n for n in spike_nodes if n in up]


def run_norse(graph: nir.NIRGraph, x: torch.Tensor, dt: float) -> tuple[torch.Tensor, dict]:
    """Run ``graph`` with Norse's own importer (``norse.torch.from_nir(graph, dt=dt)``), one step
    at a time: ``(output (T, B, ...), {node: values (T, B, ...)})``.  Raises
    :class:`UnsupportedOptionError` for node types Norse cannot import."""
    bad = _not_norse(graph)
    if bad:
        raise UnsupportedOptionError(f"Norse {norse_version()} from_nir cannot import node types {', '.join(bad)}")
    import norse.torch as nt

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        level = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)  # Norse logs a warning per R != 1
        try:
            m = nt.from_nir(graph, dt=dt)
        finally:
            logging.getLogger().setLevel(level)
    if x.dtype == torch.float64:
        m = m.double()
    state, outs, rec = None, [], {}
    with torch.no_grad():
        for t in range(x.shape[0]):
            o, state = m(x[t], state)
            outs.append(o)
            for k, v in state.cache.items():
                rec.setdefault(k, []).append(v)
    return torch.stack(outs), {k: torch.stack(v) for k, v in rec.items()}


# ---------------------------------------------------------------------------- comparison
def _compare(ref_spikes: dict, ref_out, spikes: dict, out) -> dict:
    per_layer, total, mism = {}, 0, 0
    for k, a in ref_spikes.items():
        b = spikes[k].to(a.dtype).reshape(a.shape)
        d = int((a != b).sum())
        per_layer[k] = {"spike_mismatches": d, "spikes_source": int(a.sum()), "spikes_nir": int(b.sum())}
        total += int(a.sum())
        mism += d
    res = {"spike_mismatches": mism, "spikes_source": total, "layers": per_layer}
    if out is not None:
        res["max_abs_diff_output"] = float((ref_out.double() - out.double().reshape(ref_out.shape)).abs().max())
    return res


def verify_graph(model, graph, info, x: torch.Tensor, dt: float, labels=None) -> dict:
    """Compare the source model with our importer and with Norse on ``x`` (see module doc)."""
    x = x.to(next(iter(model.parameters()), torch.zeros(())).dtype) if any(True for _ in model.parameters()) else x
    ref_out, ref_spk = run_source(model, x, info)
    layer_of = {v: k for k, v in info["spiking"].items()}
    out, rec = from_nir(graph, dt)(x, record=True)
    ours = _compare(ref_spk, ref_out, {layer_of[n]: rec[n] for n in layer_of}, out)
    report = {"samples": int(x.shape[1]), "steps": int(x.shape[0]), "importer": ours}
    if labels is not None and ref_out.dim() == 3:
        labels = torch.as_tensor(labels)
        # logits as the model forms them: mean (or max, ``readout: max``) of the readout over time
        pool = (lambda v: v.amax(0)) if getattr(model, "readout_mode", "mean") == "max" else (lambda v: v.mean(0))
        report["accuracy_source"] = float((pool(ref_out).argmax(-1) == labels).double().mean())
        report["accuracy_nir"] = float((pool(out.reshape(ref_out.shape)).argmax(-1) == labels).double().mean())
    sub, covered = norse_subgraph(graph, list(info["spiking"].values()))
    full = sub is not None and len(sub.nodes) == len(graph.nodes)
    if sub is None:
        report["norse"] = {"status": "not importable", "norse_version": norse_version(),
                           "reason": f"Norse from_nir cannot import node types {', '.join(_not_norse(graph))}"}
    else:
        n_out, n_rec = run_norse(graph if full else sub, x, dt)
        cmp = _compare({layer_of[n]: ref_spk[layer_of[n]] for n in covered}, ref_out,
                       {layer_of[n]: n_rec[n] for n in covered}, n_out if full else None)
        report["norse"] = {"status": "ok" if full else "partial", "norse_version": norse_version(),
                           "compared_layers": [layer_of[n] for n in covered], **cmp}
        if not full:
            report["norse"]["reason"] = (f"Norse from_nir cannot import node types {', '.join(_not_norse(graph))}; "
                                         f"compared the layers before them")
    report["spike_mismatches"] = ours["spike_mismatches"] + report["norse"].get("spike_mismatches", 0)
    return report


# ---------------------------------------------------------------------------- registry target
def export_model(model, out_dir, *, dt, verify=False, inputs=None, labels=None, input_shape=None) -> dict:
    """``neuroadapt export --to nir``: write ``out_dir/model.nir``; ``verify`` compares (module doc)."""
    graph, info = to_nir(model, dt, input_shape=input_shape, return_info=True)
    path = Path(out_dir) / "model.nir"
    write_nir(graph, path)
    graph = read_nir(path)  # everything below uses the file as written
    report = {"files": ["model.nir"], "nir_version": nir.__version__ if hasattr(nir, "__version__") else "",
              "node_types": dict(Counter(type(n).__name__ for n in graph.nodes.values())),
              "spiking_layers": info["spiking"], "cycles": _has_cycle(graph)}
    if verify:
        if inputs is None:
            raise ShapeError("NIR export: verify=True needs inputs (T, B, ...)")
        report.update(verify_graph(model, graph, info, torch.as_tensor(inputs), dt, labels))
    return report


def _has_cycle(graph) -> bool:
    from neuroadapt.export.nir.runtime import _order, flatten_graph

    nodes, edges = flatten_graph(graph)
    ins = [n for n, v in nodes.items() if isinstance(v, nir.Input) and "." not in n]
    return bool(_order(nodes, edges, ins)[1])
