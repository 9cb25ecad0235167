"""Any NIR graph -> a runnable torch module (:func:`from_nir`).

Semantics (the ones NIRTorch and Norse use):

* one step at a time; every node runs once per step in topological order of the graph without
  its back edges; a node's input is the **sum** of its sources' outputs;
* an edge that closes a cycle (found by depth-first search from the ``Input`` nodes) carries the
  source's output of the **previous** step (zero at the first step);
* neurons take one forward-Euler step of ``dt`` (:func:`neuroadapt.export.nir.params.to_discrete`),
  spike when ``v > v_threshold`` and are set to ``v_reset`` in the same step (``LIF``, ``CubaLIF``,
  ``IF``); ``CubaLIF``/``CubaLI`` update the synaptic current first and feed the new current to the
  membrane; ``LI``, ``CubaLI``, ``I`` output their membrane;
* shapes in NIR exclude the batch: ``Flatten(start_dim=0)`` flattens everything but the batch.
  ``Input`` shapes that carry a leading batch dimension of 1 (as Norse 1.1 writes them) are accepted.

Nested ``NIRGraph`` nodes (snnTorch writes recurrent layers that way) are inlined.  Node types
outside the list below raise :class:`UnsupportedOptionError` naming the node.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import nir

from neuroadapt.errors import DataError, ShapeError, UnsupportedOptionError
from neuroadapt.export.nir.params import to_discrete

__all__ = ["NIRModule", "from_nir", "flatten_graph"]

NODE_TYPES = ("Input, Output, Identity, Affine, Linear, Scale, Conv1d, Conv2d, SumPool2d, AvgPool2d, Flatten, "
              "Threshold, Delay, LIF, CubaLIF, LI, CubaLI, IF, I")


def _t(a) -> torch.Tensor:
    if torch.is_tensor(a):
        return a.detach().double().cpu()
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


def flatten_graph(graph: nir.NIRGraph, prefix: str = "") -> tuple[dict, list]:
    """Inline nested graphs: returns ``(nodes, edges)`` with sub-graph nodes named ``outer.inner``;
    the sub-graph's Input/Output nodes stay as pass-through nodes."""
    nodes, edges, inner_io = {}, [], {}
    for name, node in graph.nodes.items():
        full = f"{prefix}{name}"
        if isinstance(node, nir.NIRGraph):
            sub_nodes, sub_edges = flatten_graph(node, f"{full}.")
            nodes.update(sub_nodes)
            edges.extend(sub_edges)
            ins = [f"{full}.{k}" for k, v in node.nodes.items() if isinstance(v, nir.Input)]
            outs = [f"{full}.{k}" for k, v in node.nodes.items() if isinstance(v, nir.Output)]
            if len(ins) != 1 or len(outs) != 1:
                raise UnsupportedOptionError(f"NIR import: sub-graph {full!r} must have exactly one Input and one Output")
            inner_io[full] = (ins[0], outs[0])
        else:
            nodes[full] = node
    for a, b in graph.edges:
        a, b = f"{prefix}{a}", f"{prefix}{b}"
        a = inner_io[a][1] if a in inner_io else a
        b = inner_io[b][0] if b in inner_io else b
        edges.append((a, b))
    return nodes, edges


class _Node(nn.Module):
    """Parameters live as float64 buffers; :meth:`prepare` casts them once per run to the input's
    dtype/device (``self.live``)."""

    live: dict = {}

    def prepare(self, like: torch.Tensor) -> None:
        self.live = {k: b.to(device=like.device, dtype=like.dtype) for k, b in self.named_buffers() if b is not None}


class _Neuron(_Node):
    """LIF / CubaLIF / IF / LI / CubaLI / I as ``v = beta v + gain i + offset`` (+ synapse)."""

    def __init__(self, node, name: str, dt: float):
        super().__init__()
        self.spiking = isinstance(node, (nir.LIF, nir.CubaLIF, nir.IF))
        cuba = isinstance(node, (nir.CubaLIF, nir.CubaLI))
        tau = None if isinstance(node, (nir.IF, nir.I)) else (node.tau_mem if cuba else node.tau)
        v_leak = getattr(node, "v_leak", 0.0)
        p = to_discrete(dt, tau, node.r, v_leak, tau_syn=node.tau_syn if cuba else None,
                        w_in=getattr(node, "w_in", 1.0), where=name)
        self.cuba = cuba
        for k, v in p.items():
            self.register_buffer(k, _t(v))
        if self.spiking:
            self.register_buffer("v_threshold", _t(node.v_threshold))
            reset = getattr(node, "v_reset", None)
            self.register_buffer("v_reset", _t(np.zeros_like(np.asarray(node.v_threshold)) if reset is None else reset))

    def forward(self, x, state):
        p = self.live
        if state is None:
            state = (torch.zeros_like(x), torch.zeros_like(x)) if self.cuba else (torch.zeros_like(x),)
        if self.cuba:
            i = p["alpha"] * state[0] + p["syn_gain"] * x
            drive, v = i, state[1]
        else:
            drive, v = x, state[0]
        v = p["beta"] * v + p["gain"] * drive + p["offset"]
        out = v
        if self.spiking:
            out = (v > p["v_threshold"]).to(x.dtype)
            v = torch.where(out > 0, p["v_reset"].expand_as(v), v)
        return out, ((i, v) if self.cuba else (v,))


class _Stateless(_Node):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x, state):
        return self.fn(x), None


def _pair(v, n):
    v = np.asarray(v).reshape(-1)
    return tuple(int(a) for a in (np.repeat(v, n) if v.size == 1 else v))


def _conv_padding(p, n):
    if isinstance(p, (str, bytes)):
        return p.decode() if isinstance(p, bytes) else p
    return _pair(p, n)


def _module(node, name: str, dt: float) -> nn.Module:
    if isinstance(node, (nir.Input, nir.Output)) or type(node).__name__ == "Identity":
        return _Stateless(lambda x: x)
    if isinstance(node, (nir.LIF, nir.CubaLIF, nir.IF, nir.LI, nir.CubaLI, nir.I)):
        return _Neuron(node, name, dt)
    if isinstance(node, nir.Affine):
        w, b = _t(node.weight), _t(node.bias)
        return _Weights(w, b, lambda x, w, b: F.linear(x, w, b))
    if isinstance(node, nir.Linear):
        return _Weights(_t(node.weight), None, lambda x, w, b: F.linear(x, w))
    if isinstance(node, nir.Scale):
        return _Weights(_t(node.scale), None, lambda x, w, b: x * w)
    if isinstance(node, nir.Threshold):
        return _Weights(_t(node.threshold), None, lambda x, w, b: (x > w).to(x.dtype))
    if isinstance(node, nir.Delay):
        return _Delay(node, name, dt)
    if isinstance(node, (nir.Conv1d, nir.Conv2d)):
        n = 2 if isinstance(node, nir.Conv2d) else 1
        conv = F.conv2d if n == 2 else F.conv1d
        kw = dict(stride=_pair(node.stride, n), padding=_conv_padding(node.padding, n),
                  dilation=_pair(node.dilation, n), groups=int(node.groups))
        b = None if node.bias is None else _t(node.bias)
        return _Weights(_t(node.weight), b, lambda x, w, b: conv(x, w, b, **kw))
    if isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
        k, s, p = _pair(node.kernel_size, 2), _pair(node.stride, 2), _pair(node.padding, 2)
        div = 1 if isinstance(node, nir.SumPool2d) else None
        return _Stateless(lambda x: F.avg_pool2d(x, k, s, p, divisor_override=div))
    if isinstance(node, nir.Flatten):
        start, end = int(node.start_dim), int(node.end_dim)
        return _Stateless(lambda x: torch.flatten(x, start + 1 if start >= 0 else start,
                                                  end + 1 if end >= 0 else end))
    raise UnsupportedOptionError(f"NIR import: node {name!r} has type {type(node).__name__}, which neuroadapt "
                                 f"cannot run; supported: {NODE_TYPES}")


class _Delay(_Node):
    """``y_t = x_{t - d}`` with ``d = delay / dt`` whole steps per element (zeros before the start)."""

    def __init__(self, node, name: str, dt: float):
        super().__init__()
        steps = np.asarray(node.delay, dtype=np.float64) / dt
        d = np.rint(steps)
        if (d < 0).any() or (np.abs(steps - d) > 1e-6 * np.maximum(1.0, d)).any():
            raise UnsupportedOptionError(f"NIR import: Delay node {name!r} has delays that are not whole "
                                         f"multiples of dt = {dt:g} s (or negative)")
        self.register_buffer("d", torch.as_tensor(d, dtype=torch.long))
        self.max_d = int(d.max()) if d.size else 0

    def forward(self, x, state):
        hist = [torch.zeros_like(x)] * self.max_d if state is None else state  # oldest first
        hist = hist + [x]  # hist[-1 - k] is x_{t-k}
        stacked = torch.stack(hist[-(self.max_d + 1):])  # (max_d + 1, B, ...)
        idx = (self.max_d - self.d).expand_as(x).unsqueeze(0)
        y = torch.gather(stacked, 0, idx).squeeze(0)
        return y, hist[-self.max_d:] if self.max_d else []


class _Weights(_Node):
    def __init__(self, w, b, fn):
        super().__init__()
        self.register_buffer("w", w)
        self.register_buffer("b", b)
        self.fn = fn

    def forward(self, x, state):
        return self.fn(x, self.live["w"], self.live.get("b")), None


def _order(nodes: dict, edges: list, inputs: list[str]) -> tuple[list[str], set]:
    """Topological order of the graph without back edges (DFS from the inputs), and the back edges."""
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        succ[a].append(b)
    state, post, back = {}, [], set()
    for root in inputs:
        if root in state:
            continue
        stack = [(root, iter(succ[root]))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                post.append(node)
                stack.pop()
            elif state.get(nxt) == 1:
                back.add((node, nxt))
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(succ[nxt])))
    missing = [n for n in nodes if n not in state]
    if missing:
        raise DataError(f"NIR graph: node(s) {missing} cannot be reached from an Input node")
    return post[::-1], back


class NIRModule(nn.Module):
    """A NIR graph as a torch module: ``module(x)`` with ``x`` of shape ``(T, B, *input_shape)``
    returns the Output node's values ``(T, B, ...)`` (a dict when the graph has several outputs);
    ``module(x, record=True)`` returns ``(output, {node name: (T, B, ...)})``."""

    def __init__(self, graph: nir.NIRGraph, dt: float):
        super().__init__()
        self.dt = float(dt)
        self.graph = graph
        nodes, edges = flatten_graph(graph)
        for a, b in edges:
            if a not in nodes or b not in nodes:
                raise DataError(f"NIR graph: edge ({a!r}, {b!r}) names a node that does not exist")
        self.inputs = [n for n, v in nodes.items() if isinstance(v, nir.Input) and "." not in n]
        self.outputs = [n for n, v in nodes.items() if isinstance(v, nir.Output) and "." not in n]
        if len(self.inputs) != 1 or not self.outputs:
            raise UnsupportedOptionError(f"NIR import: need exactly one Input and at least one Output node "
                                         f"(got {len(self.inputs)} and {len(self.outputs)})")
        self.order, self.back = _order(nodes, edges, self.inputs)
        self.preds = {n: [(a, (a, n) in self.back) for a, b in edges if b == n] for n in self.order}
        shape = np.asarray(nodes[self.inputs[0]].input_type["input"]).reshape(-1)
        self.input_shape = tuple(int(s) for s in shape)
        self.names = list(self.order)
        self.mods = nn.ModuleList([_module(nodes[n], n, self.dt) for n in self.order])

    def _check_input(self, x):
        if not torch.is_tensor(x) or x.dim() < 2:
            raise ShapeError(f"NIR module expects a time-major tensor (T, B, ...), got {getattr(x, 'shape', type(x))}")
        if not torch.is_floating_point(x):
            x = x.float()
        shp, want = tuple(x.shape[2:]), self.input_shape
        if shp != want and not (len(want) == len(shp) + 1 and want[0] == 1 and want[1:] == shp):
            raise ShapeError(f"NIR module expects input (T, B, {', '.join(map(str, want))}), got {tuple(x.shape)}")
        if torch.isnan(x).any():
            from neuroadapt.errors import InvalidInputError
            raise InvalidInputError("NIR module: input contains NaN")
        return x

    def forward(self, x: torch.Tensor, record: bool = False):
        x = self._check_input(x)
        states = [None] * len(self.mods)
        for mod in self.mods:
            mod.prepare(x)
        prev: dict[str, torch.Tensor] = {}
        rec: dict[str, list] = {n: [] for n in self.names}
        for t in range(x.shape[0]):
            cur: dict[str, torch.Tensor] = {}
            for k, (name, mod) in enumerate(zip(self.names, self.mods)):
                if name == self.inputs[0]:
                    inp = x[t]
                else:
                    terms = [(prev if is_back else cur).get(a) for a, is_back in self.preds[name]]
                    terms = [v for v in terms if v is not None]
                    if not terms:
                        raise DataError(f"NIR graph: node {name!r} has no input at step {t}")
                    inp = terms[0]
                    for v in terms[1:]:
                        inp = inp + v
                cur[name], states[k] = mod(inp, states[k])
            prev = cur
            if record:
                for n in self.names:
                    rec[n].append(cur[n])
            else:
                for n in self.outputs:
                    rec[n].append(cur[n])
        stacked = {n: torch.stack(v) for n, v in rec.items() if v}
        out = stacked[self.outputs[0]] if len(self.outputs) == 1 else {n: stacked[n] for n in self.outputs}
        return (out, stacked) if record else out


def from_nir(graph_or_path, dt: float | None = None) -> NIRModule:
    """A runnable module of a NIR graph (or a ``.nir`` file).

    ``dt`` (seconds): the step to discretise with; defaults to the graph's ``metadata["dt"]``
    (written by neuroadapt); required otherwise.  Malformed files raise :class:`DataError`.
    """
    from neuroadapt.export.nir.io import read_nir

    graph = read_nir(graph_or_path) if not isinstance(graph_or_path, nir.NIRGraph) else graph_or_path
    if dt is None:
        meta = graph.metadata if isinstance(graph.metadata, dict) else {}
        if "dt" not in meta:
            raise UnsupportedOptionError("NIR import: the graph does not record its dt; pass dt=... (seconds)")
        dt = float(np.asarray(meta["dt"]).reshape(-1)[0])
    return NIRModule(graph, dt).eval()
