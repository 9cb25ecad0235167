"""``AMSU``: a trainable layer of LIF neurons whose synapses are tripartite (our formulation).

The equations are in :mod:`neuroadapt.core.amsu` (and ``docs/astrocyte.md``).  This is
neuroadapt's own design on the ground of the Brian 2 neuron-glia models (Stimberg et al. 2019);
the AstroSNN paper's AM-SU equations are not public and are not reproduced here.

Conventions follow snnTorch: ``spk, state = layer(x_t, state)`` for one step (``x_t`` of shape
``(B, in_features)``; ``state=None`` starts from rest), ``layer(x)`` for a whole time-major
sequence ``(T, B, in_features)`` (``batch_first=True``: ``(B, T, in)``) returning the spikes, or
``(spk, mem)`` with ``return_mem=True``; ``spike_grad`` takes any snnTorch surrogate.
``layer(x, return_state=True)`` also returns the recorded release ``r``, receptor activation
``gamma`` and astrocyte Ca2+-like variable per step.

Export: refused.  No NIR / Loihi / SpiNNaker / AER target has use-dependent (Tsodyks-Markram)
synapses or a slow astrocyte state; freezing the modulation would silently change what the
network computes, so the class carries ``export_unsupported_reason``.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from neuroadapt.core import astrocyte as tri
from neuroadapt.core.amsu import AMSUState, lif_step, reduced_astro_step, release, release_step
from neuroadapt.core.astro_params import AstroParams, check_dt
from neuroadapt.core.surrogate import atan
from neuroadapt.errors import InvalidInputError, ShapeError, UnsupportedOptionError

__all__ = ["AMSU", "EXPORT_UNSUPPORTED", "ASTROCYTES"]

ASTROCYTES = ("reduced", "gchi", "none")
EXPORT_UNSUPPORTED = (
    "AM-SU layers cannot be exported to NIR, Loihi, SpiNNaker or AER: their synapses are use-dependent "
    "(Tsodyks-Markram release modulated by a slow astrocyte state), which none of these formats can "
    "describe, and freezing the modulation at one operating point would change the network's function "
    "without notice. Keep AM-SU models in PyTorch (neuroadapt eval), or train a spiking_classifier "
    "(plain LIF) for hardware."
)


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _positive(name, v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise InvalidInputError(f"AMSU {name} must be a positive number (seconds or a gain), got {v!r}")
    return float(v)


class AMSU(nn.Module):
    """``in_features`` presynaptic channels -> ``out_features`` LIF neurons via tripartite synapses.

    Args:
        n_astro: astrocytes; channel ``i`` is sensed by (and receives gliotransmitter from) astrocyte
            ``i mod n_astro``, neuron ``j`` is modulated by astrocyte ``j mod n_astro``.
        astrocyte: ``"reduced"`` (trainable, any dt), ``"gchi"`` (the biophysical model with
            :class:`AstroParams` ``params``; RK4, small dt) or ``"none"`` (Tsodyks-Markram only).
        dt: time step in seconds.
        beta, threshold, recurrent, bias, spike_grad, batch_first: the LIF part (snnTorch meaning).
        u_star, alpha, tau_f, tau_d: release (reduced / none modes; gchi takes them from ``params``).
        tau_p, tau_c, tau_gamma, g_in, g_c, theta_p, g_gamma: the reduced astrocyte.
        excitability: also modulate the threshold, ``θ (1 - g_e c)`` (``g_e`` init ``g_exc``).
        learn_synapse / learn_astro / learn_beta: train those parameters (gains, timescales).
    """

    export_unsupported_reason = EXPORT_UNSUPPORTED

    def __init__(self, in_features: int, out_features: int, n_astro: int = 8, astrocyte: str = "reduced",
                 dt: float = 1e-3, beta: float = 0.9, threshold: float = 1.0, recurrent: bool = False,
                 bias: bool = True, spike_grad=None, batch_first: bool = False,
                 u_star: float = 0.6, alpha: float = 0.0, tau_f: float = 0.3, tau_d: float = 0.5,
                 tau_p: float = 2.0, tau_c: float = 0.5, tau_gamma: float = 0.5, g_in: float = 1.0,
                 g_c: float = 5.0, theta_p: float = 0.5, g_gamma: float = 0.5, excitability: bool = False,
                 g_exc: float = 0.2, learn_synapse: bool = True, learn_astro: bool = True,
                 learn_beta: bool = True, params: AstroParams | None = None, syn_to_astro=None):
        super().__init__()
        if astrocyte not in ASTROCYTES:
            raise UnsupportedOptionError(f"AMSU astrocyte {astrocyte!r} is not supported; choose one of {ASTROCYTES}")
        if int(in_features) < 1 or int(out_features) < 1 or int(n_astro) < 1:
            raise ShapeError(f"AMSU sizes must be positive (in {in_features}, out {out_features}, astro {n_astro})")
        if not 0 <= beta <= 1:
            raise InvalidInputError(f"AMSU beta must lie in [0, 1], got {beta!r}")
        if not 0 < u_star < 1:
            raise InvalidInputError(f"AMSU u_star (resting release probability) must lie in (0, 1), got {u_star!r}")
        if not 0 <= alpha < 1:
            raise InvalidInputError(f"AMSU alpha (release probability under gliotransmission) must lie in [0, 1), "
                                    f"got {alpha!r}")
        for name in ("dt", "tau_f", "tau_d", "tau_p", "tau_c", "tau_gamma", "g_c", "threshold"):
            _positive(name, locals()[name])
        for name in ("g_in", "g_exc"):
            if not locals()[name] >= 0:
                raise InvalidInputError(f"AMSU {name} must be >= 0, got {locals()[name]!r}")
        if not 0 <= g_gamma < 1:
            raise InvalidInputError(f"AMSU g_gamma (largest receptor activation) must lie in [0, 1), got {g_gamma!r}")
        if excitability and astrocyte == "none":
            raise UnsupportedOptionError("AMSU excitability=True needs astrocytes (the threshold is modulated by their "
                                         "Ca2+); with astrocyte='none' there is none: use 'reduced' or 'gchi'")
        self.in_features, self.out_features, self.n_astro = int(in_features), int(out_features), int(n_astro)
        self.kind, self.recurrent, self.excitability = astrocyte, bool(recurrent), bool(excitability)
        self.batch_first, self.dt = batch_first, float(dt)
        self.params = params or AstroParams()
        if astrocyte == "gchi":
            check_dt(self.dt, self.params)
            u_star, alpha = self.params.U_0_star, self.params.alpha
            tau_f, tau_d = 1 / self.params.Omega_f, 1 / self.params.Omega_d
            learn_synapse = learn_astro = False
        self.spike_grad = spike_grad or atan()
        self.fc = nn.Linear(self.in_features, self.out_features, bias=bias)
        self.rec = nn.Linear(self.out_features, self.out_features, bias=False) if recurrent else None
        self.kappa = 1.0 / u_star

        def param(name, value, learn):
            t = torch.tensor(float(value), dtype=torch.get_default_dtype())
            if learn:
                setattr(self, name, nn.Parameter(t))
            else:
                self.register_buffer(name, t)

        param("beta_raw", beta, learn_beta)
        self.register_buffer("threshold", torch.tensor(float(threshold)))
        param("u_star_logit", _logit(u_star), learn_synapse)
        # α = 0 is kept exactly 0 (a fixed logit of -inf); α > 0 is trainable with learn_synapse
        param("alpha_logit", _logit(alpha) if alpha > 0 else float("-inf"), learn_synapse and alpha > 0)
        param("log_tau_f", math.log(tau_f), learn_synapse)
        param("log_tau_d", math.log(tau_d), learn_synapse)
        for n, v in (("log_tau_p", math.log(tau_p)), ("log_tau_c", math.log(tau_c)),
                     ("log_tau_gamma", math.log(tau_gamma)), ("g_in", g_in), ("g_c", g_c), ("theta_p", theta_p),
                     ("g_gamma_logit", _logit(g_gamma) if g_gamma > 0 else -12.0)):
            param(n, v, learn_astro and astrocyte == "reduced")
        param("g_exc", g_exc, learn_astro and excitability)
        m_in = torch.zeros(self.n_astro, self.in_features)
        m_in[torch.arange(self.in_features) % self.n_astro, torch.arange(self.in_features)] = 1
        if syn_to_astro is not None:
            m_in = torch.as_tensor(syn_to_astro, dtype=torch.get_default_dtype())
            if m_in.shape != (self.n_astro, self.in_features):
                raise ShapeError(f"syn_to_astro must be ({self.n_astro}, {self.in_features}), got {tuple(m_in.shape)}")
        self.register_buffer("m_out", m_in.T.clone())                      # channel <- astrocyte
        if astrocyte == "reduced":                                         # mean over the astrocyte's channels
            m_in = m_in / m_in.sum(1, keepdim=True).clamp(min=1)
        self.register_buffer("m_in", m_in)
        p_n = torch.zeros(self.out_features, self.n_astro)
        p_n[torch.arange(self.out_features), torch.arange(self.out_features) % self.n_astro] = 1
        self.register_buffer("p_neuron", p_n)

    # ---------------------------------------------------------------- state
    def init_state(self, batch: int, dtype=None, device=None) -> AMSUState:
        dtype = dtype or self.fc.weight.dtype
        device = device or self.fc.weight.device
        z = lambda n: torch.zeros(batch, n, dtype=dtype, device=device)  # noqa: E731
        theta = self.threshold.to(dtype).expand(batch, self.out_features).clone()
        if self.kind == "gchi":
            t = tri.init_state(batch, self.in_features, self.n_astro, self.params, dtype, device)
            astro, x0 = (t.Y_S, t.Gamma_A, t.I, t.C, t.h, t.x_A, t.G_A, t.armed), self.params.x_S0
        else:
            astro, x0 = (z(self.n_astro), z(self.n_astro)), 1.0
        return AMSUState(z(self.out_features), z(self.out_features), theta, z(self.in_features),
                         torch.full((batch, self.in_features), float(x0), dtype=dtype, device=device),
                         z(self.in_features), z(self.in_features), astro)

    # ---------------------------------------------------------------- one step
    def _decay(self, log_tau):
        return torch.exp(-self.dt / log_tau.exp())

    def calcium(self, state: AMSUState) -> torch.Tensor:
        """The astrocytes' Ca2+-like variable ``(B, n_astro)`` (µM in gchi mode, [0, 1] in reduced)."""
        return state.astro[1] if self.kind == "reduced" else (state.astro[3] if self.kind == "gchi"
                                                             else state.mem.new_zeros(state.mem.shape[0], self.n_astro))

    def _coeffs(self, state: AMSUState) -> dict:
        """Per-step constants that depend only on the parameters: computed once per call, not per step."""
        k = {"beta": self.beta_raw.clamp(0, 1), "g_exc": self.g_exc.clamp(0, 0.9) if self.excitability else None}
        if self.kind == "gchi":       # the synapse's decay factors, in the dtypes of the variables they scale
            k["syn"] = tri.synapse_factors_like(state.astro[0], state.u, state.x, self.params, self.dt)
        else:
            k.update(u_star=torch.sigmoid(self.u_star_logit), alpha=torch.sigmoid(self.alpha_logit),
                     d_f=self._decay(self.log_tau_f), d_d=self._decay(self.log_tau_d))
        if self.kind == "reduced":
            k.update(d_p=self._decay(self.log_tau_p), d_c=self._decay(self.log_tau_c),
                     d_gamma=self._decay(self.log_tau_gamma), g_gamma=torch.sigmoid(self.g_gamma_logit))
        return k

    def _synapse(self, s, state: AMSUState, k: dict):
        """Release and astrocyte update: ``(u, x, r, gamma, astro)`` (independent of the neurons' output)."""
        if self.kind == "gchi":
            return self._gchi_synapse(s, state, k["syn"])
        u, x, r = release_step(s, state.u, state.x, state.gamma, k["u_star"], k["alpha"], k["d_f"], k["d_d"])
        gamma, astro = state.gamma, state.astro
        if self.kind == "reduced":
            p, c, gamma = reduced_astro_step(r, *astro, state.gamma, self.m_in, self.m_out, k["d_p"], k["d_c"],
                                             k["d_gamma"], self.g_in, self.g_c, self.theta_p, k["g_gamma"])
            astro = (p, c)
        return u, x, r, gamma, astro

    def _neuron(self, current, astro, mem, spk, theta_prev, k: dict):
        if self.rec is not None:
            current = current + self.rec(spk)
        theta = self.threshold.expand_as(mem)
        if self.excitability:
            ca = (astro[1] if self.kind == "reduced" else astro[3] / self.params.C_T) @ self.p_neuron.T
            theta = self.threshold * (1 - (k["g_exc"] * ca).clamp(max=0.9))
        spk, mem = lif_step(current, mem, spk, theta_prev, theta, k["beta"], self.spike_grad)
        return spk, mem, theta

    def step(self, s: torch.Tensor, state: AMSUState) -> tuple[torch.Tensor, AMSUState]:
        """One time step: ``spk, new_state = layer.step(x_t, state)``."""
        k = self._coeffs(state)
        u, x, r, gamma, astro = self._synapse(s, state, k)
        spk, mem, theta = self._neuron(self.fc(self.kappa * r), astro, state.mem, state.spk, state.theta, k)
        return spk, AMSUState(mem, spk, theta, u, x, r, gamma, astro)

    def _gchi_synapse(self, s, state, factors):
        """The biophysical tripartite synapse (same order as core.astrocyte.tripartite_step), with the
        AM-SU's release (:func:`~neuroadapt.core.amsu.release`: counts allowed, ``r = 0`` without input)."""
        p, dt = self.params, self.dt
        y_s, ga, ip3, c, h, xa, g, armed = state.astro
        armed = tri.rearm(armed, c, p)
        ga, ip3, c, h, xa, g = tri.astro_rk4((ga, ip3, c, h, xa, g), y_s @ self.m_in.T, 0.0, p, dt)
        y_s, gamma, u, x = tri.synapse_decay(y_s, state.gamma, state.u, state.x, g @ self.m_out.T, p, dt, factors)
        u, x, r = release(s, u, x, gamma, p.U_0_star, p.alpha)
        y_s = y_s + p.rho_c * p.Y_T * r
        xa, g, armed, _ = tri.glio_step(c, armed, xa, g, p)
        return u, x, r, gamma, (y_s, ga, ip3, c, h, xa, g, armed)

    # ---------------------------------------------------------------- calls
    def forward(self, x: torch.Tensor, state: AMSUState | None = None, return_mem: bool = False,
                return_state: bool = False):
        if not isinstance(x, torch.Tensor):
            raise ShapeError(f"AMSU expects a tensor, got {type(x).__name__}")
        if x.shape[-1] != self.in_features or x.dim() not in (2, 3):
            raise ShapeError(f"AMSU expects (B, {self.in_features}) for a step or (T, B, {self.in_features}) for a "
                             f"sequence, got shape {tuple(x.shape)}")
        if x.dim() == 2:                                       # snnTorch step call
            state = state if state is not None else self.init_state(x.shape[0], x.dtype, x.device)
            return self.step(x, state)
        if self.batch_first:
            x = x.transpose(0, 1)
        if x.shape[0] == 0:
            raise ShapeError("AMSU got a sequence with no time steps (T = 0)")
        state = state if state is not None else self.init_state(x.shape[1], x.dtype, x.device)
        # the synapses and astrocytes do not depend on the neurons' output: run them first, then one
        # GEMM for every step's current, then the (recurrent) neurons
        rs, gammas, astros = [], [], []
        u, xs, gamma, astro = state.u, state.x, state.gamma, state.astro
        syn_state, k = state, self._coeffs(state)
        for t in range(x.shape[0]):
            u, xs, r, gamma, astro = self._synapse(x[t], syn_state, k)
            syn_state = syn_state._replace(u=u, x=xs, r=r, gamma=gamma, astro=astro)
            rs.append(r)
            gammas.append(gamma)
            astros.append(astro)
        current = self.fc(self.kappa * torch.stack(rs))
        mem, spk, theta = state.mem, state.spk, state.theta
        spks, mems = [], []
        for t in range(x.shape[0]):
            spk, mem, theta = self._neuron(current[t], astros[t], mem, spk, theta, k)
            spks.append(spk)
            mems.append(mem)
        state = AMSUState(mem, spk, theta, u, xs, rs[-1], gamma, astro)
        spk, mem = torch.stack(spks), torch.stack(mems)
        if self.batch_first:
            spk, mem = spk.transpose(0, 1), mem.transpose(0, 1)
        if return_state:
            ca = torch.stack([self.calcium(state._replace(astro=a)) for a in astros])
            return spk, mem, {"r": torch.stack(rs), "gamma": torch.stack(gammas), "ca": ca}, state
        return (spk, mem) if return_mem else spk

    def extra_repr(self) -> str:
        return (f"in={self.in_features}, out={self.out_features}, n_astro={self.n_astro}, astrocyte={self.kind!r}, "
                f"dt={self.dt}, recurrent={self.recurrent}, excitability={self.excitability}")
