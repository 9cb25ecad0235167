"""``ELM``: the Expressive Leaky Memory neuron (and Branch-ELM) as an snnTorch-style module.

Equations, options and the speed design: :mod:`neuroadapt.core.elm` and ``docs/elm.md``.

Call conventions (time-major; ``batch_first=True`` for ``(B, T, N)`` sequences)::

    elm = ELM(700, 20, n_memory=100)
    y, state = elm(x_t, state)        # one step: x_t (B, 700) -> y (B, 20); state=None starts at 0
    y, state = elm(x)                 # a sequence: x (T, B, 700) -> y (T, B, 20), all steps fused
    y, mem, state = elm.forward_sequence(x, state)   # also the memory m_t, (T, B, n_memory)

``state`` is an :class:`ELMState` ``(trace (B, n_branches), memory (B, n_memory))``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from neuroadapt.core import elm as F
from neuroadapt.errors import InvalidInputError, ShapeError, UnsupportedOptionError

__all__ = ["ELM", "ELMState", "ROUTINGS"]

ROUTINGS = (None, "random", "overlap")

EXPORT_UNSUPPORTED = (
    "ELM / Branch-ELM neurons cannot be exported to NIR, Loihi, SpiNNaker or AER: their dendrite is a "
    "real-valued MLP with a scaled-tanh output and their memory units are continuous, non-spiking states "
    "updated through that MLP, while these formats describe spiking neurons with linear synapses and "
    "fixed leak dynamics (no such neuron model exists on the targets). Keep ELM models in PyTorch "
    "(checkpoint.pt), or export a spiking recipe (model.type: spiking_classifier) instead.")


class ELMState(NamedTuple):
    """State of an ELM neuron: branch traces ``(B, n_branches)`` and memory ``(B, n_memory)``."""

    trace: torch.Tensor
    memory: torch.Tensor


class ELM(nn.Module):
    """Expressive Leaky Memory neuron; Branch-ELM with ``n_branches`` / ``synapses_per_branch`` / ``routing``.

    Args:
        n_inputs, n_outputs: input channels ``d_in`` and readout width ``d_o``.
        n_memory: memory units ``d_m`` (default 100).
        version: ``"v1"`` (paper Eq. 1: ``λ (1 - κ_m)``) or ``"v2"`` (``1 - κ_λ``, App. A).
        lambda_value: ``λ`` (default 5).
        mlp_layers, mlp_hidden, mlp_activation: hidden layers ``l_mlp`` (1), width ``d_mlp``
            (default ``2 · n_memory``) and non-linearity (``relu``, ``silu``, ``tanh``).
        tau_s, learn_tau_s: synaptic-trace time constant in seconds (5 ms), shared by all
            synapses; fixed or learnable (log-parameterised).
        tau_m_min, tau_m_max: bounds of the memory timescales (seconds; 1 ms and 1 s);
            ``tau_m_init=(lo, hi)`` the log-spaced initial range (default: the bounds);
            ``learn_tau_m`` makes them learnable through the bounded sigmoid.
        w_s_init: initial synapse weight (``w_s = relu(θ_s)``, learnable).
        n_branches, synapses_per_branch, routing: Branch-ELM.  ``routing=None``: one synapse per
            input (``n_branches = n_inputs``); ``"random"``: ``n_branches · synapses_per_branch``
            synapses drawn from the inputs at random (``routing_seed``); ``"overlap"``: overlapping
            moving windows (NeuronIO).
        dt: time step in seconds (1 ms).
    """

    export_unsupported_reason = EXPORT_UNSUPPORTED

    def __init__(self, n_inputs: int, n_outputs: int, n_memory: int = 100, *, version: str = "v1",
                 lambda_value: float = 5.0, mlp_layers: int = 1, mlp_hidden: int | None = None,
                 mlp_activation: str = "relu", tau_s: float = 5e-3, learn_tau_s: bool = False,
                 tau_m_min: float = 1e-3, tau_m_max: float = 1.0, tau_m_init=None, learn_tau_m: bool = False,
                 w_s_init: float = 0.5, n_branches: int | None = None, synapses_per_branch: int = 1,
                 routing: str | None = None, routing_seed: int = 0, dt: float = 1e-3, batch_first: bool = False):
        super().__init__()
        ints = {"n_inputs": n_inputs, "n_outputs": n_outputs, "n_memory": n_memory, "mlp_layers": mlp_layers,
                "synapses_per_branch": synapses_per_branch}
        for key, val in ints.items():
            if isinstance(val, bool) or int(val) != val or val < 1:
                raise ShapeError(f"ELM: {key} must be a positive integer, got {val!r}")
        if version not in F.VERSIONS:
            raise UnsupportedOptionError(f"ELM: version {version!r} is not supported; choose v1 or v2")
        if mlp_activation not in F.ACTIVATIONS:
            raise UnsupportedOptionError(f"ELM: mlp_activation {mlp_activation!r} is not supported; choose one "
                                         f"of {', '.join(F.ACTIVATIONS)}")
        if routing not in ROUTINGS:
            raise UnsupportedOptionError(f"ELM: routing {routing!r} is not supported; choose None (one synapse "
                                         f"per input), 'random' or 'overlap'")
        if not (dt > 0 and tau_s > 0 and lambda_value > 0):
            raise InvalidInputError(f"ELM: dt, tau_s and lambda_value must be positive (got dt={dt}, tau_s={tau_s}, "
                             f"lambda_value={lambda_value})")
        _check_taus(tau_m_min, tau_m_max, tau_m_init)
        n_inputs, n_memory = int(n_inputs), int(n_memory)
        if routing is None:
            if n_branches not in (None, n_inputs) or synapses_per_branch != 1:
                raise ShapeError(f"ELM: without routing every input is one branch (n_branches = n_inputs = "
                                 f"{n_inputs}, synapses_per_branch = 1); got n_branches={n_branches}, "
                                 f"synapses_per_branch={synapses_per_branch}. Set routing='random' or "
                                 f"'overlap' for Branch-ELM")
            n_branches = n_inputs
            route = torch.arange(n_inputs)
        else:
            if n_branches is None or isinstance(n_branches, bool) or int(n_branches) != n_branches or n_branches < 1:
                raise ShapeError(f"ELM: routing={routing!r} needs n_branches, a positive integer (got {n_branches!r})")
            n_branches = int(n_branches)
            n_syn = n_branches * int(synapses_per_branch)
            if routing == "random":
                route = F.random_routing(n_inputs, n_syn, torch.Generator().manual_seed(int(routing_seed)))
            else:
                if synapses_per_branch > n_inputs:
                    raise ShapeError(f"ELM: overlap routing window synapses_per_branch={synapses_per_branch} is "
                                     f"wider than the {n_inputs} inputs")
                route = F.overlap_routing(n_inputs, n_branches, int(synapses_per_branch))
        self.n_inputs, self.n_outputs, self.n_memory = n_inputs, int(n_outputs), n_memory
        self.n_branches, self.synapses_per_branch = n_branches, int(synapses_per_branch)
        self.version, self.lambda_value, self.dt = version, float(lambda_value), float(dt)
        self.routing, self.routing_seed, self.batch_first = routing, int(routing_seed), batch_first
        self.mlp_activation, self.tau_m_min, self.tau_m_max = mlp_activation, float(tau_m_min), float(tau_m_max)
        self.register_buffer("route", route.long())
        self.w_s_raw = nn.Parameter(torch.full((route.numel(),), float(w_s_init)))
        log_tau_s = torch.tensor(math.log(tau_s))
        if learn_tau_s:
            self.log_tau_s = nn.Parameter(log_tau_s)
        else:
            self.register_buffer("log_tau_s", log_tau_s)
        lo, hi = tau_m_init if tau_m_init is not None else (tau_m_min, tau_m_max)
        lo = hi * 1e-3 if lo <= 0 else lo   # log spacing needs lo > 0 (tau_m_min may be 0)
        init = torch.logspace(math.log10(lo), math.log10(hi), n_memory, dtype=torch.float64)
        raw = F.raw_from_tau(init, self.tau_m_min, self.tau_m_max).to(torch.get_default_dtype())
        if learn_tau_m:
            self.tau_m_raw = nn.Parameter(raw)
        else:
            self.register_buffer("tau_m_raw", raw)
        width = int(mlp_hidden) if mlp_hidden is not None else 2 * n_memory
        if width < 1:
            raise ShapeError(f"ELM: mlp_hidden must be a positive integer, got {mlp_hidden!r}")
        sizes = [n_branches + n_memory] + [width] * int(mlp_layers)
        self.mlp = nn.ModuleList([nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
                                 + [nn.Linear(width, n_memory)])
        self.readout = nn.Linear(n_memory, self.n_outputs)

    # ------------------------------------------------------------------ derived quantities
    @property
    def w_s(self) -> torch.Tensor:
        return torch.relu(self.w_s_raw)

    @property
    def tau_s(self) -> torch.Tensor:
        return self.log_tau_s.exp()

    @property
    def kappa_s(self) -> torch.Tensor:
        return F.kappa_from_tau(self.tau_s, self.dt)

    @property
    def tau_m(self) -> torch.Tensor:
        return F.tau_from_raw(self.tau_m_raw, self.tau_m_min, self.tau_m_max)

    @property
    def kappa_m(self) -> torch.Tensor:
        return F.kappa_from_tau(self.tau_m, self.dt)

    @property
    def kappa_lambda(self) -> torch.Tensor:
        """v2's input decay ``exp(-dt λ / τ_m)``."""
        return F.kappa_from_tau(self.tau_m / self.lambda_value, self.dt)

    @property
    def gain(self) -> torch.Tensor:
        return F.memory_gain(self.kappa_m, self.lambda_value, self.version)

    def params(self) -> F.ELMParams:
        """The current parameters in the form :mod:`neuroadapt.core.elm` uses."""
        first = self.mlp[0]
        identity = self.routing is None   # route = arange(n_inputs): Q = diag(w_s)
        return F.ELMParams(
            syn_map=None if identity else F.synaptic_map(self.route, self.w_s, self.n_branches, self.n_inputs),
            syn_scale=self.w_s if identity else None,
            kappa_s=self.kappa_s, w_in=first.weight[:, : self.n_branches], w_mem=first.weight[:, self.n_branches :],
            b1=first.bias, hidden=tuple((m.weight, m.bias) for m in self.mlp[1:-1]),
            w_out=self.mlp[-1].weight, b_out=self.mlp[-1].bias, kappa_m=self.kappa_m, gain=self.gain,
            w_y=self.readout.weight, b_y=self.readout.bias, activation=self.mlp_activation)

    def init_state(self, batch_size: int, like: torch.Tensor | None = None) -> ELMState:
        """Zero state for ``batch_size`` samples."""
        ref = like if like is not None else self.readout.weight
        kw = {"dtype": ref.dtype, "device": ref.device}
        return ELMState(torch.zeros(batch_size, self.n_branches, **kw), torch.zeros(batch_size, self.n_memory, **kw))

    # ------------------------------------------------------------------ forward
    def _state(self, state, batch: int, x: torch.Tensor) -> ELMState:
        if state is None:
            return self.init_state(batch, x)
        if not (isinstance(state, tuple) and len(state) == 2):
            raise ShapeError("ELM: state must be an ELMState (trace, memory) as returned by a previous call, or None")
        trace, mem = state
        if tuple(trace.shape) != (batch, self.n_branches) or tuple(mem.shape) != (batch, self.n_memory):
            raise ShapeError(f"ELM: state has trace {tuple(trace.shape)} and memory {tuple(mem.shape)}; expected "
                             f"({batch}, {self.n_branches}) and ({batch}, {self.n_memory}) for a batch of {batch}")
        return ELMState(trace.to(x.dtype), mem.to(x.dtype))

    def _check_input(self, x, dims: tuple) -> None:
        if not isinstance(x, torch.Tensor):
            raise ShapeError(f"ELM expects a tensor, got {type(x).__name__}")
        if x.dim() not in dims:
            raise ShapeError(f"ELM expects one step (B, {self.n_inputs}) or a sequence "
                             f"{'(B, T' if self.batch_first else '(T, B'}, {self.n_inputs}), got shape {tuple(x.shape)}")
        if x.shape[-1] != self.n_inputs:
            raise ShapeError(f"ELM was built for {self.n_inputs} inputs but got {x.shape[-1]} in the last "
                             f"dimension (shape {tuple(x.shape)}); check the data set or n_inputs")

    def step(self, x: torch.Tensor, state: ELMState | None = None):
        """One step: ``x`` ``(B, n_inputs)`` -> ``(y (B, n_outputs), state)``."""
        self._check_input(x, (2,))
        trace, mem = self._state(state, x.shape[0], x)
        y, trace, mem = F.elm_step(x, trace, mem, self.params())
        return y, ELMState(trace, mem)

    def forward_sequence(self, x: torch.Tensor, state: ELMState | None = None):
        """All steps fused: ``x`` ``(T, B, n_inputs)`` -> ``(y (T, B, n_outputs), memory (T, B, n_memory), state)``."""
        self._check_input(x, (3,))
        if self.batch_first:
            x = x.transpose(0, 1)
        trace0, mem0 = self._state(state, x.shape[1], x)
        y, mem, trace_t, mem_t = F.elm_sequence(x, self.params(), trace0, mem0)
        if self.batch_first:
            y, mem = y.transpose(0, 1), mem.transpose(0, 1)
        return y, mem, ELMState(trace_t, mem_t)

    def forward(self, x: torch.Tensor, state: ELMState | None = None):
        """``elm(x_t, state)`` for one step ``(B, N)``, ``elm(x, state)`` for a sequence; returns ``(y, state)``."""
        self._check_input(x, (2, 3))
        if x.dim() == 2:
            return self.step(x, state)
        y, _, state = self.forward_sequence(x, state)
        return y, state

    # ------------------------------------------------------------------ reference twin
    def reference_params(self) -> dict:
        """Float64 NumPy copies of every parameter, in the paper's form (for
        :mod:`neuroadapt.reference.elm`): per-synapse ``route``/``w_s``, the first MLP layer as one
        matrix over ``[b, κ_m m]``, time constants in seconds."""
        def a(t):
            return t.detach().cpu().double().numpy().copy()

        return {"route": self.route.cpu().numpy().copy(), "w_s": a(self.w_s), "n_branches": self.n_branches,
                "tau_s": float(self.tau_s), "tau_m": a(self.tau_m), "dt": self.dt, "lambda_value": self.lambda_value,
                "version": self.version, "activation": self.mlp_activation,
                "mlp": [(a(m.weight), a(m.bias)) for m in self.mlp], "readout": (a(self.readout.weight),
                                                                                  a(self.readout.bias))}

    def extra_repr(self) -> str:
        return (f"n_inputs={self.n_inputs}, n_outputs={self.n_outputs}, n_memory={self.n_memory}, "
                f"n_branches={self.n_branches}, synapses_per_branch={self.synapses_per_branch}, "
                f"routing={self.routing!r}, version={self.version!r}, lambda={self.lambda_value}, dt={self.dt}")


def _check_taus(tau_min, tau_max, tau_init) -> None:
    if not (np.isfinite(tau_min) and np.isfinite(tau_max)) or tau_min < 0 or not tau_max > tau_min:
        raise InvalidInputError(f"ELM: memory timescale bounds out of order: need 0 <= tau_m_min < tau_m_max "
                         f"(seconds), got tau_m_min={tau_min}, tau_m_max={tau_max}")
    if tau_init is not None:
        if len(tau_init) != 2:
            raise InvalidInputError(f"ELM: tau_m_init must be a pair (lo, hi), got {tau_init!r}")
        lo, hi = tau_init
        if not (tau_min <= lo <= hi <= tau_max) or not hi > 0:
            raise InvalidInputError(f"ELM: tau_m_init=({lo}, {hi}) must satisfy tau_m_min <= lo <= hi <= tau_m_max "
                             f"(bounds {tau_min}, {tau_max}) with hi > 0")
