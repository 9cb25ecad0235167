"""neuroadapt / snnTorch modules -> a NIR graph (:func:`to_nir`).

Walks the model (``SpikingClassifier``, ``LIFLayer``, ``LIReadout``, ``nn.Sequential`` of
``nn.Linear`` / ``nn.Conv1d`` / ``nn.Conv2d`` / ``nn.AvgPool2d`` / ``nn.Flatten`` / snnTorch neurons)
and writes each piece as NIR nodes with explicit edges.  Neurons are written in the NIR form that
reproduces their discrete update *exactly* under forward Euler at ``dt`` (:mod:`.params`):

=====================================================  ==============================================
neuron (snnTorch 1.0 semantics)                         NIR nodes
=====================================================  ==============================================
``Leaky`` reset "zero"                                  ``LIF`` (v_reset 0)
``Leaky`` / ``Synaptic`` / ``R*`` reset "zero",         ``LIF`` / ``CubaLIF`` (v_reset 0)
``reset_delay=False``
``Leaky`` reset "subtract" / "none"                     ``LI`` -> ``Threshold``; "subtract" adds the
                                                        cycle ``Threshold -> Linear(-theta I) -> LI``
``Synaptic`` reset "subtract" / "none"                  ``LI`` (synapse) -> ``LI`` (membrane) ->
                                                        ``Threshold`` (+ the same reset cycle)
``RLeaky`` / ``RSynaptic``                              as above plus ``spikes -> Affine(W, b)`` (or
                                                        ``Linear(diag V)``) back into the layer
``LIReadout``                                           ``Affine`` -> ``LI``
=====================================================  ==============================================

NIR's neurons reset *to a value* right after the spike; snnTorch's "subtract" reset and its
delayed reset of the whole membrane (``Synaptic``/recurrent "zero" with ``reset_delay=True``)
have no NIR neuron, hence the explicit ``Threshold`` cycle (exact, but only readers that take
``LI``/``Threshold`` and cycles can run it -- not Norse 1.1).  The delayed whole-membrane zero
reset cannot be written at all and raises :class:`UnsupportedOptionError`.

``fold_r=True`` (default) moves a ``LIF``'s input gain ``R`` into the weights of the ``Affine``/
``Conv`` nodes that feed only it and writes ``R = 1`` -- the same dynamics, in the form Norse's
importer (which ignores ``R`` on ``LIF``) runs correctly.
"""
from __future__ import annotations

import numpy as np
import snntorch as snn
import torch
from torch import nn

import nir

from neuroadapt.errors import ShapeError, UnsupportedOptionError
from neuroadapt.export.nir.params import to_continuous

__all__ = ["to_nir", "GraphInfo"]

SUPPORTED = ("SpikingClassifier, LIFLayer, LIReadout, nn.Sequential, nn.Linear, nn.Conv1d, nn.Conv2d, "
             "nn.AvgPool2d, nn.Flatten, nn.Identity, nn.Dropout, snntorch Leaky/Synaptic/RLeaky/RSynaptic")


class GraphInfo(dict):
    """What :func:`to_nir` wrote: ``{"spiking": {layer path: spike node}, "modules": {layer path:
    module to record its spikes from}, "output": node}``."""


def _join(path: str, name) -> str:
    return f"{path}_{name}" if path else str(name)


def _np(t) -> np.ndarray:
    return np.asarray(t.detach().cpu().double().numpy() if torch.is_tensor(t) else t, dtype=np.float64)


def _full(value, shape) -> np.ndarray:
    a = _np(value)
    try:
        return np.array(np.broadcast_to(a, tuple(shape)), dtype=np.float64)
    except ValueError:
        raise ShapeError(f"parameter of shape {a.shape} does not fit the population shape {tuple(shape)}") from None


class _Builder:
    def __init__(self, dt: float, fold_r: bool):
        self.dt, self.fold_r = float(dt), fold_r
        self.nodes: dict[str, nir.NIRNode] = {}
        self.edges: list[tuple[str, str]] = []
        self.info = GraphInfo(spiking={}, modules={}, output=None)

    def add(self, name: str, node, *sources: str) -> str:
        name = name.replace(".", "_")
        if name in self.nodes:
            raise UnsupportedOptionError(f"NIR export: two nodes named {name!r}")
        self.nodes[name] = node
        for s in sources:
            self.edges.append((s, name))
        return name

    # ------------------------------------------------------------------ walking
    def emit(self, module: nn.Module, path: str, src: str, shape: tuple) -> tuple[str, tuple]:
        from neuroadapt.engine.models import SpikingClassifier
        from neuroadapt.nn.layers import LIFLayer, LIReadout

        if isinstance(module, SpikingClassifier):
            for i, layer in enumerate(module.layers):
                src, shape = self.emit(layer, f"layers_{i}", src, shape)
            return self.emit(module.readout, "readout", src, shape)
        if isinstance(module, LIFLayer):
            src, shape = self.emit(module.fc, _join(path, "fc"), src, shape)
            out = self.emit(module.neuron, _join(path, "lif"), src, shape)
            self.info["modules"][_join(path, "lif")] = module  # runs whole sequences: hook the layer
            return out
        if isinstance(module, LIReadout):
            src, shape = self.emit(module.fc, _join(path, "fc"), src, shape)
            p = to_continuous(self.dt, _full(module.beta.clamp(0, 1), shape))
            return self._li(_join(path, "li"), p, shape, src), shape
        if isinstance(module, nn.Sequential):
            for name, child in module.named_children():
                src, shape = self.emit(child, _join(path, name), src, shape)
            return src, shape
        if isinstance(module, (nn.Identity, nn.Dropout)):
            return src, shape
        if isinstance(module, snn.SpikingNeuron):
            path = path or "lif"
            self.info["modules"][path] = module
            return self.neuron(module, path, src, shape), shape
        if isinstance(module, nn.Linear):
            if shape[-1:] != (module.in_features,) or len(shape) != 1:
                raise ShapeError(f"NIR export: {path} (Linear, {module.in_features} inputs) receives shape {shape}")
            w = _np(module.weight)
            node = nir.Affine(weight=w, bias=_np(module.bias)) if module.bias is not None else nir.Linear(weight=w)
            return self.add(path or "fc", node, src), (module.out_features,)
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            return self.conv(module, path, src, shape)
        if isinstance(module, nn.AvgPool2d):
            if module.ceil_mode or not module.count_include_pad or module.divisor_override is not None:
                raise UnsupportedOptionError(f"NIR export: {path} (AvgPool2d) with ceil_mode / "
                                             f"count_include_pad=False / divisor_override has no NIR form")
            pair = lambda v: np.array(nn.modules.utils._pair(v), dtype=np.int64)  # noqa: E731
            node = nir.AvgPool2d(kernel_size=pair(module.kernel_size), stride=pair(module.stride),
                                 padding=pair(module.padding))
            return self.add(path, node, src), self._out_shape(module, shape)
        if isinstance(module, nn.Flatten):
            nd = len(shape) + 1  # torch dims include the batch dimension, NIR's do not
            start = module.start_dim % nd - 1
            end = module.end_dim % nd - 1
            if start < 0:
                raise UnsupportedOptionError(f"NIR export: {path} flattens the batch dimension")
            node = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=start,
                               end_dim=-1 if end == len(shape) - 1 else end)
            return self.add(path, node, src), self._out_shape(module, shape)
        raise UnsupportedOptionError(f"NIR export: layer {path or '<model>'!r} ({type(module).__name__}) has no NIR "
                                     f"mapping; supported: {SUPPORTED}")

    @staticmethod
    def _out_shape(module, shape) -> tuple:
        with torch.no_grad():
            return tuple(module(torch.zeros(1, *shape)).shape[1:])

    def conv(self, module, path, src, shape):
        if module.padding_mode != "zeros":
            raise UnsupportedOptionError(f"NIR export: {path} uses padding_mode={module.padding_mode!r}; "
                                         f"NIR convolutions pad with zeros")
        two = isinstance(module, nn.Conv2d)
        if len(shape) != (3 if two else 2):
            raise ShapeError(f"NIR export: {path} ({type(module).__name__}) receives shape {shape}")
        bias = _np(module.bias) if module.bias is not None else np.zeros(module.out_channels)
        if two:
            pad = module.padding if isinstance(module.padding, str) else np.array(module.padding, dtype=np.int64)
            node = nir.Conv2d(input_shape=np.array(shape[1:], dtype=np.int64), weight=_np(module.weight),
                              stride=np.array(module.stride, dtype=np.int64), padding=pad,
                              dilation=np.array(module.dilation, dtype=np.int64), groups=module.groups, bias=bias)
        else:  # nir.Conv1d takes plain ints
            pad = module.padding if isinstance(module.padding, str) else int(module.padding[0])
            node = nir.Conv1d(input_shape=int(shape[1]), weight=_np(module.weight), stride=int(module.stride[0]),
                              padding=pad, dilation=int(module.dilation[0]), groups=module.groups, bias=bias)
        return self.add(path or "conv", node, src), self._out_shape(module, shape)

    # ------------------------------------------------------------------ neurons
    def _li(self, name, p, shape, *src):
        if np.isinf(p["tau_mem"]).all():
            node = nir.I(r=p["r"])
        elif np.isinf(p["tau_mem"]).any():
            raise UnsupportedOptionError(f"NIR export: {name} mixes beta = 1 and beta < 1 neurons")
        else:
            node = nir.LI(tau=p["tau_mem"], r=p["r"], v_leak=p["v_leak"])
        return self.add(name, node, *src)

    def neuron(self, n, path: str, src: str, shape: tuple) -> str:
        kind = type(n).__name__
        if getattr(n, "state_quant", False) or getattr(n, "inhibition", False):
            raise UnsupportedOptionError(f"NIR export: {path} ({kind}) uses state_quant/inhibition, which NIR cannot express")
        g = getattr(n, "graded_spikes_factor", torch.ones(()))
        if not bool((g == 1).all()):
            raise UnsupportedOptionError(f"NIR export: {path} ({kind}) has graded spikes (factor != 1)")
        synaptic = isinstance(n, (snn.Synaptic, snn.RSynaptic))
        recurrent = isinstance(n, (snn.RLeaky, snn.RSynaptic))
        if not synaptic and not isinstance(n, (snn.Leaky, snn.RLeaky)):
            raise UnsupportedOptionError(f"NIR export: neuron {path!r} ({kind}) has no NIR mapping; "
                                         f"supported: Leaky, Synaptic, RLeaky, RSynaptic")
        reset, delay = n.reset_mechanism, bool(getattr(n, "reset_delay", True))
        beta = _full(n.beta.clamp(0, 1), shape)
        thr = _full(n.threshold, shape)
        alpha = _full(n.alpha.clamp(0, 1), shape) if synaptic else None
        rec = self._recurrent(n, path, shape, src) if recurrent else None
        if not delay and isinstance(n, snn.RSynaptic):
            raise UnsupportedOptionError(f"NIR export: {path}: snnTorch 1.0's RSynaptic cannot run with "
                                         f"reset_delay=False (its forward fails), so there is nothing to export")
        if reset == "zero" and (not delay or not (synaptic or recurrent)):
            if not delay and (thr <= 0).any():
                raise UnsupportedOptionError(f"NIR export: {path}: reset_delay=False needs thresholds > 0")
            return self._lif(path, beta, alpha, thr, shape, src, rec)
        if reset == "zero":
            raise UnsupportedOptionError(
                f"NIR export: {path} ({kind}, reset 'zero', reset_delay=True) zeroes the whole membrane one step "
                f"after a spike, input included; NIR has no node for that. Train with reset 'subtract' or 'none' "
                f"(recipes: model.reset), or build the neuron with reset_delay=False (exported as NIR "
                f"{'CubaLIF' if synaptic else 'LIF'})")
        if reset == "subtract" and not delay:
            raise UnsupportedOptionError(f"NIR export: {path} ({kind}): reset 'subtract' with reset_delay=False "
                                         f"is not supported; use reset_delay=True (snnTorch's default)")
        return self._threshold_form(path, beta, alpha, thr, reset, shape, src, rec)

    def _recurrent(self, n, path, shape, src):
        """The recurrent weights as a ``Linear`` node.  A recurrent bias is added at every step,
        the first included, but a back edge carries nothing at the first step (NIRTorch, Norse);
        so the bias moves into the feed-forward ``Affine`` that feeds the layer (exact)."""
        if len(shape) != 1:
            raise UnsupportedOptionError(f"NIR export: {path}: recurrent layers must be 1-d (got {shape})")
        if not n.all_to_all:
            return nir.Linear(weight=np.diag(_full(n.V, shape)))
        if not isinstance(n.recurrent, nn.Linear):
            raise UnsupportedOptionError(f"NIR export: {path}: convolutional recurrence has no NIR mapping")
        if n.recurrent.bias is not None:
            b = _np(n.recurrent.bias)
            ff = self.nodes.get(src)
            if isinstance(ff, nir.Affine):
                ff.bias = ff.bias + b
            elif isinstance(ff, nir.Linear):
                self.nodes[src] = nir.Affine(weight=ff.weight, bias=b)
            else:
                raise UnsupportedOptionError(f"NIR export: {path}: a recurrent bias needs a Linear/Affine layer "
                                             f"in front of the neuron to carry it")
        return nir.Linear(weight=_np(n.recurrent.weight))

    def _lif(self, path, beta, alpha, thr, shape, src, rec):
        zeros = np.zeros(shape)
        p = to_continuous(self.dt, beta, alpha=alpha)
        if alpha is None and np.isinf(p["tau_mem"]).all():
            node = nir.IF(r=p["r"], v_threshold=thr, v_reset=zeros)
        elif np.isinf(p["tau_mem"]).any():
            raise UnsupportedOptionError(f"NIR export: {path}: beta = 1 (no leak) is only exportable for a "
                                         f"whole non-synaptic layer (as NIR IF)")
        elif alpha is None:
            node = nir.LIF(tau=p["tau_mem"], r=p["r"], v_leak=p["v_leak"], v_threshold=thr, v_reset=zeros)
        else:
            node = nir.CubaLIF(tau_syn=p["tau_syn"], tau_mem=p["tau_mem"], r=p["r"], v_leak=p["v_leak"],
                               v_threshold=thr, v_reset=zeros, w_in=p["w_in"])
        name = self.add(path, node, src)
        if rec is not None:
            self.add(f"{name}_rec", rec, name)
            self.edges.append((f"{name}_rec", name))
        self.info["spiking"][path] = name
        return name

    def _threshold_form(self, path, beta, alpha, thr, reset, shape, src, rec):
        entry = src
        if alpha is not None:
            entry = self._li(f"{path}_syn", to_continuous(self.dt, alpha), shape, src)
        mem = self._li(f"{path}_mem", to_continuous(self.dt, beta), shape, entry)
        spk = self.add(f"{path}_spk", nir.Threshold(threshold=thr), mem)
        if reset == "subtract":
            if len(shape) == 1:
                self.add(f"{path}_reset", nir.Linear(weight=np.diag(-thr)), spk)
            else:
                self.add(f"{path}_reset", nir.Scale(scale=-thr), spk)
            self.edges.append((f"{path}_reset", mem))
        if rec is not None:
            self.add(f"{path}_rec", rec, spk)
            self.edges.append((f"{path}_rec", entry if alpha is not None else mem))
        self.info["spiking"][path] = spk
        return spk

    # ------------------------------------------------------------------ R folding
    def fold(self):
        """Write LIF input gains into the weights of exclusive Affine/Linear/Conv sources (R = 1)."""
        outdeg: dict[str, int] = {}
        for a, _ in self.edges:
            outdeg[a] = outdeg.get(a, 0) + 1
        for name, node in self.nodes.items():
            if not isinstance(node, nir.LIF) or np.all(node.r == 1):
                continue
            srcs = [a for a, b in self.edges if b == name]
            ok = all(isinstance(self.nodes[a], (nir.Affine, nir.Linear, nir.Conv1d, nir.Conv2d)) and outdeg[a] == 1
                     for a in srcs)
            r = node.r
            conv = any(isinstance(self.nodes[a], (nir.Conv1d, nir.Conv2d)) for a in srcs)
            if conv:  # a per-channel gain only
                flat = r.reshape(r.shape[0], -1)
                ok = ok and bool((flat == flat[:, :1]).all())
            if not ok:
                continue
            for a in srcs:
                src = self.nodes[a]
                if isinstance(src, (nir.Conv1d, nir.Conv2d)):
                    g = r.reshape(r.shape[0], -1)[:, 0]
                    src.weight = src.weight * g.reshape(-1, *([1] * (src.weight.ndim - 1)))
                    src.bias = src.bias * g
                else:
                    src.weight = src.weight * r.reshape(-1, 1)
                    if isinstance(src, nir.Affine):
                        src.bias = src.bias * r
            node.r = np.ones_like(r)


def to_nir(model: nn.Module, dt: float, input_shape=None, *, fold_r: bool = True, return_info: bool = False):
    """The NIR graph of ``model`` (discretised with time step ``dt`` seconds).

    ``input_shape``: the shape of one time step of one sample, without time and batch
    dimensions (e.g. ``(64,)`` or ``(2, 34, 34)``); taken from ``model.n_inputs`` /
    ``in_features`` when omitted.  The graph's metadata records ``dt``.  With ``return_info``
    also returns a :class:`GraphInfo` naming each spiking layer's spike node.
    """
    from neuroadapt.export.nir.params import _check_dt

    dt = _check_dt(dt)
    if input_shape is None:
        input_shape = _guess_input_shape(model)
    shape = tuple(int(s) for s in (input_shape if hasattr(input_shape, "__len__") else (input_shape,)))
    b = _Builder(dt, fold_r)
    b.add("input", nir.Input(input_type=np.array(shape)))
    was_training = model.training
    model.eval()
    try:
        src, out_shape = b.emit(model, "", "input", shape)
    finally:
        model.train(was_training)
    b.add("output", nir.Output(output_type=np.array(out_shape)), src)
    b.info["output"] = src
    if fold_r:
        b.fold()
    meta = {"dt": dt, "generator": "neuroadapt", "discretisation": "forward-euler",
            "spike_nodes": ",".join(b.info["spiking"].values())}
    try:
        graph = nir.NIRGraph(nodes=b.nodes, edges=b.edges, metadata=meta)
    except (ValueError, AssertionError) as exc:
        raise ShapeError(f"NIR export: the graph fails NIR's type check: {exc}") from None
    return (graph, b.info) if return_info else graph


def _guess_input_shape(model):
    for attr in ("n_inputs", "in_features"):
        if isinstance(getattr(model, attr, None), int):
            return (getattr(model, attr),)
    first = next((m for m in model.modules() if isinstance(m, nn.Linear)), None)
    if first is not None and not any(isinstance(m, (nn.Conv1d, nn.Conv2d)) for m in model.modules()):
        return (first.in_features,)
    raise ShapeError("NIR export: cannot tell the input shape of this model; pass input_shape=(...) "
                     "(one time step of one sample, e.g. (2, 34, 34))")
