"""The one conversion between neuroadapt's discrete-time parameters and NIR's continuous ones.

NIR describes neurons by ODEs (``tau dv/dt = (v_leak - v) + R I``; ``tau_syn dI/dt = -I + w_in S``)
and leaves the discretisation to each backend.  The readers that matter here (Norse's
``from_nir``, snnTorch's ``import_nir``, SpiNNaker2's ``s2_nir``, the NIR paper scripts) all take
one **forward-Euler** step of length ``dt`` per time step, so that is the convention::

    v_t = v_{t-1} + dt/tau (v_leak - v_{t-1} + R I_t)  =  beta v_{t-1} + gain I_t + offset
    beta = 1 - dt/tau,   gain = dt R / tau,   offset = dt v_leak / tau

    I_t = I_{t-1} + dt/tau_syn (-I_{t-1} + w_in S_t)   =  alpha I_{t-1} + syn_gain S_t
    alpha = 1 - dt/tau_syn,   syn_gain = dt w_in / tau_syn

A neuroadapt/snnTorch layer (``m_t = beta m_{t-1} + x_t``) therefore has ``gain = 1``:
``tau = dt/(1 - beta)``, ``R = tau/dt = 1/(1 - beta)``, ``v_leak = 0`` (and ``w_in = tau_syn/dt``
for the synaptic current), which is also what snnTorch's exporter writes.  ``beta = 1`` (no leak)
has no finite ``tau``: integrators (``IF``/``I``, ``R = gain/dt``) take it.

This is not the exact-exponential convention ``beta = exp(-dt/tau)`` of
:func:`neuroadapt.core.lif.decay_from_tau` (used for the Brian2 twins): an Euler reader given an
``exp`` time constant would run a different neuron.  Only the ratio ``dt/tau`` is portable, so the
graph stores the ``dt`` it was made with (metadata ``dt``) and importers must use the same one.

:func:`to_continuous` and :func:`to_discrete` are the only two places that convert; each is the
other's inverse (``tests/test_export_nir.py`` checks both round trips).
"""
from __future__ import annotations

import numpy as np

from neuroadapt.errors import InvalidInputError

__all__ = ["to_continuous", "to_discrete"]


def _arr(value, name: str) -> np.ndarray:
    a = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value, dtype=np.float64)
    if np.isnan(a).any():
        raise InvalidInputError(f"{name} contains NaN")
    return a


def _check_dt(dt) -> float:
    try:
        dt = float(dt)
    except (TypeError, ValueError):
        raise InvalidInputError(f"dt must be a positive number of seconds, got {dt!r}") from None
    if not (dt > 0 and np.isfinite(dt)):
        raise InvalidInputError(f"dt must be a positive number of seconds, got {dt!r}")
    return dt


def to_continuous(dt, beta, *, gain=1.0, offset=0.0, alpha=None, syn_gain=1.0) -> dict:
    """Discrete per-step parameters -> NIR fields (arrays, float64).

    ``beta`` (membrane decay per step, in [0, 1]), ``gain``/``offset`` (input scale and constant
    drive per step); with ``alpha`` (synaptic decay) also ``tau_syn``/``w_in``.  Returns
    ``{"tau_mem", "r", "v_leak"[, "tau_syn", "w_in"]}``; where ``beta == 1`` ``tau_mem`` is
    ``inf`` and ``r = gain/dt`` (an integrator: NIR ``IF``/``I``).
    """
    dt = _check_dt(dt)
    beta, gain, offset = _arr(beta, "beta"), _arr(gain, "gain"), _arr(offset, "offset")
    if ((beta < 0) | (beta > 1)).any():
        raise InvalidInputError(f"beta must lie in [0, 1] (got values in [{beta.min()}, {beta.max()}])")
    beta, gain, offset = np.broadcast_arrays(beta, gain, offset)
    leak = 1.0 - beta
    integ = leak == 0
    if (integ & (offset != 0)).any():
        raise InvalidInputError("a constant drive (offset/v_leak) on a neuron without leak (beta = 1) "
                                "has no NIR form; put it in the bias of the preceding Affine")
    safe = np.where(integ, 1.0, leak)
    out = {"tau_mem": np.where(integ, np.inf, dt / safe),
           "r": np.where(integ, gain / dt, gain / safe),
           "v_leak": np.where(integ, 0.0, offset / safe)}
    if alpha is not None:
        alpha, syn_gain = np.broadcast_arrays(_arr(alpha, "alpha"), _arr(syn_gain, "syn_gain"))
        if ((alpha < 0) | (alpha >= 1)).any():
            raise InvalidInputError(f"alpha must lie in [0, 1) for a NIR synapse "
                                    f"(got values in [{alpha.min()}, {alpha.max()}])")
        out["tau_syn"] = dt / (1.0 - alpha)
        out["w_in"] = syn_gain / (1.0 - alpha)
    return out


def to_discrete(dt, tau_mem=None, r=1.0, v_leak=0.0, *, tau_syn=None, w_in=1.0, where: str = "node") -> dict:
    """NIR fields -> discrete per-step parameters (inverse of :func:`to_continuous`).

    ``tau_mem=None`` (or ``inf``) is an integrator (``IF``/``I``: ``beta = 1``, ``gain = dt R``).
    Returns ``{"beta", "gain", "offset"[, "alpha", "syn_gain"]}`` (float64 arrays).  A time
    constant shorter than ``dt`` makes the Euler step unstable (``beta < 0``) and raises
    :class:`InvalidInputError` -- usually a sign that the graph was written with another ``dt``
    or time unit.
    """
    dt = _check_dt(dt)
    r, v_leak = _arr(r, f"{where}.r"), _arr(v_leak, f"{where}.v_leak")
    if tau_mem is None:
        tau_mem = np.inf
    tau = _arr(tau_mem, f"{where}.tau")
    if (tau <= 0).any():
        raise InvalidInputError(f"{where}: time constants must be positive (min {tau.min()})")
    if (tau < dt).any():
        raise InvalidInputError(
            f"{where}: time constant {tau.min():g} s is shorter than dt = {dt:g} s, so the forward-Euler "
            f"step is unstable; import with the dt the graph was made for (Norse 1.1's to_nir writes "
            f"tau = dt/tau_mem_inv: export with to_nir(..., dt=1.0) to get tau in seconds)")
    tau, r, v_leak = np.broadcast_arrays(tau, r, v_leak)
    integ = np.isinf(tau)
    out = {"beta": np.where(integ, 1.0, 1.0 - dt / np.where(integ, 1.0, tau)),
           "gain": np.where(integ, dt * r, dt * r / np.where(integ, 1.0, tau)),
           "offset": np.where(integ, 0.0, dt * v_leak / np.where(integ, 1.0, tau))}
    if tau_syn is not None:
        ts = _arr(tau_syn, f"{where}.tau_syn")
        if (ts < dt).any():
            raise InvalidInputError(f"{where}: tau_syn {ts.min():g} s is shorter than dt = {dt:g} s "
                                    f"(unstable Euler step); import with the graph's dt")
        ts, w = np.broadcast_arrays(ts, _arr(w_in, f"{where}.w_in"))
        out["alpha"] = 1.0 - dt / ts
        out["syn_gain"] = dt * w / ts
    return out
