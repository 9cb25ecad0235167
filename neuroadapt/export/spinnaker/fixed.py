"""s16.15 fixed-point emulation of SpiNNaker's (sPyNNaker's) LIF update, and its float64 twin.

What it computes, per population and 1-ms-style machine time step (one step = the network's ``dt``):

1. spikes emitted in the previous step arrive (every exported delay is one step): the 16-bit weights
   of each receptor are summed into a ring-buffer slot and converted to s16.15 current; an
   ``IF_curr_exp`` synapse adds ``input * init`` to its buffer, an ``IF_curr_delta`` synapse adds the
   input itself;
2. outside the refractory period (``neuron_model_lif_impl.h``):
   ``I = exc - inh + I_offset``; ``alpha = I * R + V_rest``; ``V = alpha - exp_TC * (alpha - V)``
   (products rounded to nearest: ``MULT_ROUND_NEAREST_ACCUM``); inside it the timer counts down;
3. spike if ``V >= V_thresh`` (``threshold_type_static``): ``V = V_reset``, timer = ``T_refract``;
4. synapse shaping: exp buffers are multiplied by ``decay`` (u0.32, ``decay_s1615``: product
   shifted right by 32), delta buffers are cleared.

Parameters: ``R = tau_m / c_m``, ``exp_TC = exp(-h / tau_m)`` (both s16.15, rounded to nearest),
``T_refract = ceil(tau_refrac / h)``, ``decay = exp(-h / tau_syn)``, ``init = (tau_syn / h)(1 - decay)``
(u0.32). Read from sPyNNaker's sources: the update order (``neuron_impl_standard.h``), the closed form,
the ``>=`` threshold, ``decay_s1615``. **Inferred** (not checked against a chip): that ``exp_TC``/``R`` are
rounded to nearest on the host, the 16-bit weight scaling by a power-of-two shift per post population
and receptor (chosen so the largest weight fits) with floor conversion to s16.15, ``init`` of the older
exponential synapse, and that an ``IF_curr_delta`` weight ``w`` mV is delivered as a one-step current
``w / ((1 - exp_TC) R)`` nA (sPyNNaker's delta synapse feeds the buffer to the same closed form).

Any value outside s16.15 (|x| >= 65536) raises :class:`~neuroadapt.errors.InvalidInputError`.
"""
from __future__ import annotations

import math

import numpy as np

from neuroadapt.errors import InvalidInputError, ShapeError

__all__ = ["FRAC_BITS", "S1615_MAX", "to_s1615", "from_s1615", "to_u032", "Emulator", "emulate"]

FRAC_BITS = 15
ONE = 1 << FRAC_BITS
S1615_MAX = (2**31 - 1) / ONE      # 65535.99997
_LIM = 2**31 - 1


def _check(bits: np.ndarray, where: str) -> np.ndarray:
    if bits.size and (bits.max() > _LIM or bits.min() < -_LIM - 1):
        v = (bits.max() if bits.max() > _LIM else bits.min()) / ONE
        raise InvalidInputError(f"{where}: value {v:.6g} overflows SpiNNaker's s16.15 range "
                                f"[-65536, {S1615_MAX:.5f}]; export with a smaller v_scale or smaller weights")
    return bits


def to_s1615(x, where: str = "value") -> np.ndarray:
    """Float -> s16.15 bit patterns (int64), rounded to nearest; overflow raises."""
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise InvalidInputError(f"{where}: NaN or inf cannot be represented in s16.15")
    big = np.abs(x) >= 2**17  # avoid int64 overflow on absurd values before the range check
    if np.any(big):
        raise InvalidInputError(f"{where}: value {x[big].flat[0]:.6g} overflows SpiNNaker's s16.15 range "
                                f"[-65536, {S1615_MAX:.5f}]; export with a smaller v_scale or smaller weights")
    return _check(np.round(x * ONE).astype(np.int64), where)


def from_s1615(bits) -> np.ndarray:
    return np.asarray(bits, dtype=np.float64) / ONE


def to_u032(x, where: str = "value") -> np.ndarray:
    """Float in [0, 1] -> u0.32 bit patterns (int64), rounded to nearest and clipped to 2**32 - 1."""
    x = np.asarray(x, dtype=np.float64)
    if np.any(x < 0) or np.any(x > 1) or not np.all(np.isfinite(x)):
        raise InvalidInputError(f"{where}: u0.32 holds values in [0, 1]")
    return np.minimum(np.round(x * 2.0**32), 2**32 - 1).astype(np.int64)


def _mul_rn(a, b):
    """s16.15 * s16.15 rounded to nearest (MULT_ROUND_NEAREST_ACCUM)."""
    return (a * b + (1 << (FRAC_BITS - 1))) >> FRAC_BITS


def _decay(x, d):
    """decay_s1615: s16.15 * u0.32 >> 32 (floor)."""
    return (x * d) >> 32


class _Pop:
    """Per-population constants, in float and in fixed point."""

    def __init__(self, pop, h_ms: float, lag: int):
        p = pop.params
        self.label, self.n, self.cell, self.lag = pop.label, pop.size, pop.cell, lag
        beta = np.exp(-h_ms / p["tau_m"])
        self.f = {"R": p["tau_m"] / p["cm"], "expTC": beta, "v_rest": p["v_rest"], "v_thresh": p["v_thresh"],
                  "v_reset": p["v_reset"], "i_offset": p["i_offset"]}
        self.t_refract = np.ceil(np.round(p["tau_refrac"] / h_ms, 9)).astype(np.int64)
        w = f"population {pop.label}"
        self.q = {k: to_s1615(v, f"{w} {k}") for k, v in self.f.items()}
        if self.cell == "IF_curr_exp":
            decay = np.exp(-h_ms / p["tau_syn_E"])
            init = p["tau_syn_E"] / h_ms * (1 - decay)
            self.f.update(decay=decay, init=init)
            self.q.update(decay=to_u032(decay, f"{w} synaptic decay"), init=to_u032(np.minimum(init, 1.0), f"{w} init"))
        # a delta weight of w mV is a one-step current w / ((1 - exp_TC) R)
        self.delta_gain = 1.0 / ((1 - beta) * self.f["R"])


class _Synapses:
    """Dense weight matrices (n_pre, n_post) of one receptor into one population, float and 16-bit."""

    def __init__(self, pre: str, w: np.ndarray, where: str):
        self.pre, self.w = pre, w
        m = float(np.abs(w).max()) if w.size else 0.0
        self.e = math.ceil(math.log2(m)) if m > 0 else 0
        self.q = np.minimum(np.round(np.abs(w) / 2.0 ** (self.e - 16)), 65535).astype(np.int64) * np.sign(w).astype(np.int64)
        self.where = where

    def to_s1615(self, summed: np.ndarray) -> np.ndarray:
        s = self.e - 1  # LSB 2**(e-16) nA = 2**(e-1) s16.15 units
        return _check(summed << s if s >= 0 else summed >> (-s), self.where)


class Emulator:
    """Runs an exported :class:`~neuroadapt.export.spinnaker.convert.Network` on batched input spikes,
    either in s16.15 (``fixed=True``) or in float64 with the same algorithm."""

    def __init__(self, net):
        self.net = net
        self.n_sources = next(p.size for p in net.populations if p.role == "input")
        h = net.h_ms
        self.pops, lag = [], 0
        for p in net.populations:
            if p.cell == "SpikeSourceArray":
                continue
            lag += 1  # every SpiNNaker connection is one step (arrivals act in the step they arrive)
            self.pops.append(_Pop(p, h, lag))
        # a bias source fires for discrete step t when its layer's inputs do: step t + (layer lag - 1)
        lags = {p.label: p.lag for p in self.pops}
        self.bias_lag = {q.pre: lags[q.post] - 1 for q in net.projections if q.kind == "bias"}
        self.syn = {}
        for p in self.pops:
            for rec in ("excitatory", "inhibitory"):
                for proj in net.projections:
                    if proj.post != p.label or proj.receptor != rec:
                        continue
                    n_pre = net.population(proj.pre).size
                    r = proj.rows
                    steps = np.round(r[:, 3] / h).astype(int)
                    for d in np.unique(steps):  # one weight matrix per delay (a ring-buffer slot on the chip)
                        sel = steps == d
                        w = np.zeros((n_pre, p.n))
                        np.add.at(w, (r[sel, 0].astype(int), r[sel, 1].astype(int)), np.abs(r[sel, 2]))
                        if p.cell != "IF_curr_exp":
                            w = w * p.delta_gain[None, :]
                        where = f"projection {proj.pre} -> {p.label} ({rec})"
                        to_s1615(w, f"{where}: weight as current [nA]")  # each weight must be an s16.15 current
                        to_s1615(w * p.f["R"][None, :], f"{where}: weight * R [mV]")  # ... and I R of one spike
                        syn = _Synapses(proj.pre, w, f"population {p.label} {rec} weights")
                        syn.delay = int(d)
                        self.syn.setdefault((p.label, rec), []).append(syn)
        for key, lst in self.syn.items():  # one shift per post population and receptor
            m = max(float(np.abs(s.w).max()) for s in lst)
            e = math.ceil(math.log2(m)) if m > 0 else 0
            for s in lst:
                s.e = e
                s.q = np.minimum(np.round(s.w / 2.0 ** (e - 16)), 65535).astype(np.int64)

    def run(self, spikes: np.ndarray, fixed: bool = True) -> dict:
        """``spikes``: (T, B, n_sources) 0/1 -- the input population's raster (spike counts expanded by
        :func:`~neuroadapt.export.spinnaker.convert.expand_counts`). Returns ``{label: (T + lag_max, B,
        n) spikes}``, the readout ``v`` under ``"v_readout"`` (mV) and ``"lags"``."""
        spikes = np.asarray(spikes)
        if spikes.ndim != 3 or spikes.shape[2] != self.n_sources:
            raise ShapeError(f"emulator input must be (T, B, {self.n_sources}) spikes of the input population, "
                             f"got shape {spikes.shape}")
        if not np.all((spikes == 0) | (spikes == 1)):
            raise InvalidInputError("emulator input must be 0/1 spikes (expand spike counts with expand_counts)")
        T, B, _ = spikes.shape
        total = T + self.pops[-1].lag
        k = "q" if fixed else "f"
        state = {}
        for p in self.pops:
            v = np.zeros((B, p.n), dtype=np.int64 if fixed else np.float64)
            zero = np.zeros((B, p.n), dtype=np.int64 if fixed else np.float64)
            state[p.label] = {"v": v, "exc": zero.copy(), "inh": zero.copy(),
                              "timer": np.zeros((B, p.n), dtype=np.int64)}
        out = {p.label: np.zeros((total, B, p.n), dtype=np.uint8) for p in self.pops}
        v_rec = np.zeros((total, B, self.pops[-1].n))
        emitted = {p.label: np.zeros((total, B, p.n), dtype=np.int64) for p in self.pops}  # spikes sent at step k
        emitted["input"] = np.zeros((total, B, spikes.shape[2]), dtype=np.int64)
        emitted["input"][:T] = spikes
        for label, lag in self.bias_lag.items():  # bias source for discrete step t fires at step t + lag
            emitted[label] = np.zeros((total, B, 1), dtype=np.int64)
            emitted[label][lag:lag + T] = 1
        for step in range(total):
            for p in self.pops:
                s = state[p.label]
                par = getattr(p, k)
                for rec in ("exc", "inh"):
                    syns = [q for q in self.syn.get((p.label, "excitatory" if rec == "exc" else "inhibitory"), [])
                            if step >= q.delay]
                    if not syns:
                        continue
                    if fixed:  # one ring-buffer slot per receptor: integer sum, then one conversion
                        inp = syns[0].to_s1615(sum(emitted[q.pre][step - q.delay] @ q.q for q in syns))
                        s[rec] = _check(s[rec] + (_decay(inp, par["init"]) if p.cell == "IF_curr_exp" else inp),
                                        f"population {p.label} synaptic input")
                    else:
                        inp = sum(emitted[q.pre][step - q.delay] @ q.w for q in syns)
                        s[rec] = s[rec] + (inp * par["init"] if p.cell == "IF_curr_exp" else inp)
                free = s["timer"] <= 0
                cur = s["exc"] - s["inh"] + par["i_offset"]
                if fixed:
                    alpha = _check(_mul_rn(_check(cur, f"population {p.label} current"), par["R"]) + par["v_rest"],
                                   f"population {p.label} alpha = I R + V_rest")
                    v_new = _check(alpha - _mul_rn(par["expTC"], alpha - s["v"]), f"population {p.label} membrane")
                else:
                    alpha = cur * par["R"] + par["v_rest"]
                    v_new = alpha - par["expTC"] * (alpha - s["v"])
                s["v"] = np.where(free, v_new, s["v"])
                s["timer"] = np.where(free, s["timer"], s["timer"] - 1)
                spk = s["v"] >= par["v_thresh"]
                s["v"] = np.where(spk, par["v_reset"], s["v"])
                s["timer"] = np.where(spk, p.t_refract, s["timer"])
                emitted[p.label][step] = spk
                out[p.label][step] = spk
                if p.cell == "IF_curr_exp":
                    for rec in ("exc", "inh"):
                        s[rec] = _decay(s[rec], par["decay"]) if fixed else s[rec] * par["decay"]
                else:
                    s["exc"], s["inh"] = np.zeros_like(s["exc"]), np.zeros_like(s["inh"])
            last = state[self.pops[-1].label]["v"]
            v_rec[step] = from_s1615(last) if fixed else last
        out["v_readout"] = v_rec
        out["lags"] = {p.label: p.lag for p in self.pops}
        return out


def emulate(net, spikes, fixed: bool = True) -> dict:
    """Shorthand for ``Emulator(net).run(spikes, fixed)``."""
    return Emulator(net).run(spikes, fixed)
