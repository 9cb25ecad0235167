"""The Expressive Leaky Memory (ELM) neuron as pure functions: one step, and all steps fused.

Equations (Spieler et al., ICLR 2024, Eq. 1; Branch-ELM §2; v2 update App. A).  Inputs
``x_t`` (``n_in`` channels) are routed to ``d_s = d_tree · d_brch`` synapses (synapse ``j``
reads input ``route[j]`` and belongs to branch ``j // d_brch``), every synapse keeps a trace
with the shared decay ``κ_s = exp(-dt/τ_s)``, and branch ``i`` sums its synapses' traces::

    s_t   = κ_s s_{t-1} + w_s ⊙ x_t[route]         (per synapse)
    b_t   = Σ_{j in branch i} s_t[j]  =  κ_s b_{t-1} + Q x_t
    Δm_t  = 1.7159 tanh(2/3 · MLP([b_t, κ_m ⊙ m_{t-1}]))
    v1:  m_t = κ_m ⊙ m_{t-1} + λ (1 - κ_m) ⊙ Δm_t
    v2:  m_t = κ_m ⊙ m_{t-1} + (1 - κ_λ) ⊙ Δm_t,   κ_λ = exp(-dt λ / τ_m) = κ_m^λ
    y_t   = W_y m_t + b_y

``Q`` (``d_tree × n_in``, :func:`synaptic_map`) sums ``w_s`` of the synapses joining input ``k``
to branch ``i``; because ``κ_s`` is shared, only the branch traces ``b`` are state (v2 keeps
exactly these; v1's per-synapse traces sum to the same ``b``).  The MLP has ``l_mlp`` hidden
layers of width ``d_mlp`` (ReLU / SiLU / tanh) and an output layer of width ``d_m``.

Speed by construction (:func:`elm_sequence`): the first MLP layer is linear in
``[b_t, κ_m m_{t-1}]``, so it splits into ``W_in b_t + b_1`` and ``W_mem (κ_m m_{t-1})``.  The
trace is a linear filter shared by all channels, so it commutes with ``W_in``:
``W_in b_t = κ_s (W_in b_{t-1}) + (W_in Q) x_t``.  Hence one matrix multiply of all ``T·B``
input rows with ``W_in Q`` (``d_mlp × n_in``), one linear scan over ``d_mlp`` channels, and the
sequential part (:mod:`neuroadapt.core.elm_scan`) only carries the memory.

Time constants are in seconds, like ``dt``; :func:`kappa_from_tau` / :func:`tau_from_kappa`
are the one conversion per direction, :func:`tau_from_raw` / :func:`raw_from_tau` the bounded
sigmoid parameterisation ``τ = τ_min + (τ_max - τ_min) σ(θ)`` of the memory timescales.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from neuroadapt.core.elm_input import project
from neuroadapt.core.elm_scan import ACTIVATIONS, TANH_A, TANH_B, activation, memory_scan, traced_memory_scan
from neuroadapt.errors import InvalidInputError, ShapeError, UnsupportedOptionError

__all__ = ["ELMParams", "elm_step", "elm_sequence", "memory_scan", "scaled_tanh", "kappa_from_tau",
           "tau_from_kappa", "tau_from_raw", "raw_from_tau", "memory_gain", "random_routing",
           "overlap_routing", "synaptic_map", "VERSIONS", "ACTIVATIONS", "TANH_A", "TANH_B"]

VERSIONS = ("v1", "v2")
_EPS = 1e-6  # log-spaced initial τ at the bounds would need θ = ±inf


def scaled_tanh(x: torch.Tensor) -> torch.Tensor:
    """LeCun's scaled tanh ``1.7159 tanh(2x/3)``."""
    return TANH_A * torch.tanh(TANH_B * x)


def kappa_from_tau(tau, dt: float):
    """Per-step decay ``exp(-dt / τ)`` (tensor or float; ``τ``, ``dt`` in seconds)."""
    if dt <= 0:
        raise InvalidInputError(f"dt must be positive (got {dt})")
    if isinstance(tau, torch.Tensor):
        return torch.exp(-dt / tau)
    if not tau > 0:
        raise InvalidInputError(f"time constant must be positive (got {tau})")
    return math.exp(-dt / tau)


def tau_from_kappa(kappa, dt: float):
    """Inverse of :func:`kappa_from_tau`: ``τ = -dt / ln κ`` for ``0 < κ < 1``."""
    if dt <= 0:
        raise InvalidInputError(f"dt must be positive (got {dt})")
    if isinstance(kappa, torch.Tensor):
        return -dt / torch.log(kappa)
    if not 0 < kappa < 1:
        raise InvalidInputError(f"decay must lie in (0, 1) (got {kappa})")
    return -dt / math.log(kappa)


def tau_from_raw(raw: torch.Tensor, tau_min: float, tau_max: float) -> torch.Tensor:
    """Bounded memory timescale ``τ_min + (τ_max - τ_min) σ(raw)``."""
    return tau_min + (tau_max - tau_min) * torch.sigmoid(raw)


def raw_from_tau(tau: torch.Tensor, tau_min: float, tau_max: float) -> torch.Tensor:
    """Inverse of :func:`tau_from_raw` (``τ`` is clamped a hair inside the open interval)."""
    p = ((tau - tau_min) / (tau_max - tau_min)).clamp(_EPS, 1 - _EPS)
    return torch.log(p) - torch.log1p(-p)


def memory_gain(kappa_m: torch.Tensor, lambda_value: float, version: str) -> torch.Tensor:
    """Factor of ``Δm`` in the memory update: ``λ (1 - κ_m)`` (v1) or ``1 - κ_m^λ`` (v2)."""
    if version == "v1":
        return lambda_value * (1 - kappa_m)
    if version == "v2":
        return 1 - kappa_m ** lambda_value
    raise UnsupportedOptionError(f"ELM version {version!r} is not supported; choose one of {', '.join(VERSIONS)}")


# ----------------------------------------------------------------------------- routing
def random_routing(n_inputs: int, n_synapses: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Input index of every synapse: concatenated random permutations of the inputs, so every
    input feeds ``n_synapses / n_inputs`` synapses (± 1), at random branches."""
    reps = -(-n_synapses // n_inputs)
    perm = torch.cat([torch.randperm(n_inputs, generator=generator) for _ in range(reps)])
    return perm[:n_synapses].clone()


def overlap_routing(n_inputs: int, n_branches: int, per_branch: int) -> torch.Tensor:
    """Overlapping moving window (NeuronIO routing): branch ``i`` reads the ``per_branch``
    consecutive inputs starting at ``i · ceil(n_inputs / n_branches)`` (wrapping around)."""
    stride = -(-n_inputs // n_branches)
    start = torch.arange(n_branches).unsqueeze(1) * stride
    return ((start + torch.arange(per_branch).unsqueeze(0)) % n_inputs).reshape(-1)


def synaptic_map(route: torch.Tensor, w_s: torch.Tensor, n_branches: int, n_inputs: int) -> torch.Tensor:
    """``Q`` (``n_branches × n_inputs``): the summed weight of the synapses joining input ``k`` to
    branch ``i`` (differentiable in ``w_s``)."""
    per_branch = route.numel() // n_branches
    branch = torch.arange(route.numel(), device=route.device) // per_branch
    flat = torch.zeros(n_branches * n_inputs, dtype=w_s.dtype, device=w_s.device)
    flat = flat.index_add(0, branch * n_inputs + route, w_s)
    return flat.view(n_branches, n_inputs)


# ----------------------------------------------------------------------------- parameters
@dataclass
class ELMParams:
    """Everything one ELM step needs, already in the form the equations use.

    ``syn_map``: Q ``(d_tree, n_in)``, or ``None`` with ``syn_scale`` = ``w_s`` ``(n_in,)`` when every
    input is its own branch (Q diagonal: no ``n_in × n_in`` matrix is built); ``kappa_s``: 0-d tensor; ``w_in`` ``(H, d_tree)`` and ``w_mem``
    ``(H, d_m)`` with bias ``b1`` ``(H,)``: the first MLP layer; ``hidden``: ``((W, b), ...)`` further
    layers; ``w_out`` ``(d_m, H)``, ``b_out``; ``kappa_m``, ``gain``: ``(d_m,)``; readout ``w_y``, ``b_y``.
    """

    syn_map: torch.Tensor
    kappa_s: torch.Tensor
    w_in: torch.Tensor
    w_mem: torch.Tensor
    b1: torch.Tensor
    hidden: tuple
    w_out: torch.Tensor
    b_out: torch.Tensor
    kappa_m: torch.Tensor
    gain: torch.Tensor
    w_y: torch.Tensor
    b_y: torch.Tensor
    activation: str = "relu"
    syn_scale: torch.Tensor | None = None

    def synapses(self, x: torch.Tensor) -> torch.Tensor:
        """``Q x`` for ``x`` of shape ``(..., n_in)``."""
        return x * self.syn_scale if self.syn_map is None else x @ self.syn_map.t()

    def input_weight(self) -> torch.Tensor:
        """``W_in Q`` ``(H, n_in)``: the first MLP layer seen from the input spikes."""
        return self.w_in * self.syn_scale if self.syn_map is None else self.w_in @ self.syn_map


def _mlp_delta(p: ELMParams, pre: torch.Tensor) -> torch.Tensor:
    act = activation(p.activation)
    h = act(pre)
    for w, b in p.hidden:
        h = act(torch.nn.functional.linear(h, w, b))
    return scaled_tanh(torch.nn.functional.linear(h, p.w_out, p.b_out))


def elm_step(x: torch.Tensor, trace: torch.Tensor, mem: torch.Tensor, p: ELMParams):
    """One step.  ``x``: ``(B, n_in)``; ``trace``: ``(B, d_tree)``; ``mem``: ``(B, d_m)``.
    Returns ``(y, trace, mem)``."""
    trace = p.kappa_s * trace + p.synapses(x)
    km = p.kappa_m * mem
    pre = trace @ p.w_in.t() + km @ p.w_mem.t() + p.b1
    mem = km + p.gain * _mlp_delta(p, pre)
    return torch.nn.functional.linear(mem, p.w_y, p.b_y), trace, mem


def elm_sequence(x: torch.Tensor, p: ELMParams, trace0: torch.Tensor, mem0: torch.Tensor):
    """All ``T`` steps of ``x`` ``(T, B, n_in)`` at once (module docstring).

    Returns ``(y (T, B, d_o), mem (T, B, d_m), trace_T (B, d_tree), mem_T (B, d_m))``; the same
    numbers as ``T`` calls of :func:`elm_step` up to float rounding.
    """
    if x.dim() != 3:
        raise ShapeError(f"elm_sequence expects (T, B, n_in) input, got shape {tuple(x.shape)}")
    T, B, n_in = x.shape
    w_eff = p.input_weight()                                      # (H, n_in)
    # the final branch trace: κ_s^T b_0 + Σ_t κ_s^{T-1-t} Q x_t
    powers = p.kappa_s ** torch.arange(T - 1, -1, -1, device=x.device, dtype=x.dtype)
    # one product over every step, and the decayed input sum (sparse-input C kernel on CPU)
    u, xs = project(x, w_eff, powers)
    # a_t = κ_s a_{t-1} + u_t (= W_in b_t), zin_t = a_t + b1, then the memory loop; on CPU without extra
    # hidden layers all of it in one fused C loop, elsewhere linear_scan + memory_scan
    mem = traced_memory_scan(u, trace0 @ p.w_in.t(), p.kappa_s, p.b1, mem0, p.w_mem * p.kappa_m, p.w_out,
                             p.b_out, p.kappa_m, p.gain, p.activation, p.hidden)
    y = torch.nn.functional.linear(mem, p.w_y, p.b_y)
    trace_t = (p.kappa_s ** T) * trace0 + p.synapses(xs)
    return y, mem, trace_t, mem[-1]
