"""A trained :class:`~neuroadapt.engine.models.SpikingClassifier` as a PyNN network description.

The discrete model (snnTorch semantics, time step ``dt``) becomes populations of PyNN standard
cells whose *continuous-time* dynamics, sampled on the grid ``h = dt`` (NEST ``on_grid``), are the
same linear system:

* ``leaky`` layers -> ``IF_curr_delta`` (no synaptic filter, like the discrete ``Leaky``):
  ``V_k = beta V_{k-1} + P30 I_offset + sum(w)``, ``beta = exp(-h / tau_m)``, ``P30 = tau_m/c_m (1 - beta)``;
  a weight ``x`` (model units) becomes ``x * v_scale`` mV.
* ``synaptic`` layers -> ``IF_curr_exp`` with ``tau_syn = -h / ln(alpha)``; a spike arriving at step
  ``k`` adds ``w`` to the current, whose effect on ``V`` over the next step is ``P21 w`` with
  ``P21 = tau_s tau_m / (c_m (tau_m - tau_s)) (beta - alpha)``, so ``w = x v_scale / P21`` nA.
* the non-spiking readout -> ``IF_curr_delta`` with an unreachable threshold (its ``v`` is recorded).
* biases -> a one-neuron ``SpikeSourceArray`` per layer (``bias<i>``) that fires on every step the
  layer's inputs can arrive, connected with the bias as weight: the bias then starts exactly when the
  discrete model's does and, in ``synaptic`` layers, passes the synaptic filter as it does there
  (``syn_t = alpha syn_{t-1} + W s_t + b``). ``i_offset`` stays 0.

Resets: ``zero`` resets to ``v_reset = 0``; snnTorch's zero reset of a ``Synaptic`` or recurrent layer
also discards the next step's input, which is ``tau_refrac = h``. ``subtract`` has no standard-cell
equivalent: it becomes reset to ``v_reset = theta (1 - 1/beta)`` (exact when the membrane lands on the
threshold, short by ``beta * overshoot`` otherwise; see docs/spinnaker.md), or, with
``subtract="fir"``, exactly: memoryless cells whose leak lives in ``fir_steps`` delayed copies of each
synapse (:func:`_kernel`), with the subtraction as a delayed autapse. ``none`` is refused.

Latency: a layer's spikes come ``lag`` grid steps after the discrete model's (inputs are sent
``INPUT_LAG`` steps late, +1 per delta layer, +2 per exp layer: NEST applies an exponential current
to ``V`` one step after it arrives). Recurrent delta connections have delay ``h`` and are exact;
recurrent exp connections cannot be faster than 2 steps and so act one step late.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from neuroadapt.errors import InvalidInputError, UnsupportedOptionError

__all__ = ["tau_from_decay", "decay_from_tau", "Population", "Projection", "Network", "build_network",
           "expand_counts", "INPUT_LAG", "CM_NF", "READOUT_THRESHOLD_MV"]

CM_NF = 1.0                  #: membrane capacitance of every exported cell [nF]
INPUT_LAG = 2                #: grid steps by which input spikes are sent late (PyNN/NEST needs t > min_delay)
READOUT_THRESHOLD_MV = 32000.0  #: threshold of the non-spiking readout (fits s16.15, never reached in practice)
MAX_DELAY_STEPS = 144        #: longest SpiNNaker delay (16 on the core x 9 with delay extensions)
FIR_TAU_STEPS = 1e-3         #: membrane time constant (in time steps) of the "fir" mapping's memoryless cells


def _kernel(beta, alpha, k_max: int) -> np.ndarray:
    """(K, n): effect on ``m_t`` of a unit input at step ``t - k``: ``beta^k`` (leaky) or
    ``(beta^(k+1) - alpha^(k+1)) / (beta - alpha)`` (synaptic, ``(k+1) beta^k`` when equal)."""
    k = np.arange(k_max)[:, None]
    if alpha is None:
        return beta[None, :] ** k
    same = np.isclose(alpha, beta, rtol=1e-12)
    diff = np.where(same, 1.0, beta - alpha)
    return np.where(same, (k + 1) * beta**k, (beta ** (k + 1) - alpha ** (k + 1)) / diff)


def _fir_layer(label, n, v_thresh, lag, dt) -> "Population":
    """A memoryless IF_curr_delta population (``V_k`` = inputs arriving at step ``k``): the leak lives in
    the synapses' delay lines, so resets cannot lose anything."""
    tau = FIR_TAU_STEPS * dt * 1e3  # exp(-h / tau) = exp(-1000) = 0 in float64; cm = tau_m makes R = 1 MOhm
    params = {"tau_m": np.full(n, tau), "cm": np.full(n, tau), "v_rest": np.zeros(n),
              "v_thresh": v_thresh, "v_reset": np.zeros(n), "tau_refrac": np.zeros(n), "i_offset": np.zeros(n)}
    pop = Population(label, n, "IF_curr_delta", params, lag=lag)
    pop.v_init = np.zeros(n)
    return pop


# ---------------------------------------------------------------------------------- one conversion each way
def tau_from_decay(decay, dt: float):
    """Discrete per-step decay factor (``beta`` or ``alpha``, in (0, 1)) -> time constant in ms, for a
    step of ``dt`` seconds: ``tau = -dt / ln(decay)``."""
    d = np.asarray(decay, dtype=np.float64)
    if not np.all(np.isfinite(d)) or np.any(d <= 0) or np.any(d >= 1):
        raise UnsupportedOptionError(f"decay factors must lie strictly between 0 and 1 to map to a time "
                                     f"constant, got values in [{d.min():g}, {d.max():g}]")
    return -(float(dt) * 1e3) / np.log(d)


def decay_from_tau(tau_ms, dt: float):
    """Time constant in ms -> discrete per-step decay factor for a step of ``dt`` seconds (inverse of
    :func:`tau_from_decay`)."""
    t = np.asarray(tau_ms, dtype=np.float64)
    if not np.all(np.isfinite(t)) or np.any(t <= 0):
        raise InvalidInputError("time constants must be positive and finite")
    return np.exp(-(float(dt) * 1e3) / t)


# ---------------------------------------------------------------------------------- description
@dataclass
class Population:
    label: str
    size: int
    cell: str                    # "IF_curr_delta" | "IF_curr_exp" | "SpikeSourceArray"
    params: dict = field(default_factory=dict)   # PyNN parameter -> (size,) float64 array
    v_init: np.ndarray | None = None
    lag: int = 0                 # grid steps behind the discrete model
    record_v: bool = False
    role: str = "hidden"         # "input" | "hidden" | "readout"


@dataclass
class Projection:
    pre: str
    post: str
    rows: np.ndarray             # (n, 4): pre, post, weight (mV or nA), delay (ms)
    receptor: str                # "excitatory" | "inhibitory"
    kind: str                    # "feedforward" | "recurrent"


@dataclass
class Network:
    dt: float                    # seconds
    populations: list
    projections: list
    v_scale: float               # mV per model unit
    notes: dict = field(default_factory=dict)
    input_channels: int = 0      # the model's input width
    input_copies: int = 1        # source neurons per input channel (spike counts up to this per step)

    @property
    def h_ms(self) -> float:
        return self.dt * 1e3

    def population(self, label: str) -> Population:
        return next(p for p in self.populations if p.label == label)


def _np(t) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def _per_neuron(value, n: int, what: str) -> np.ndarray:
    v = np.asarray(_np(torch.as_tensor(value)), dtype=np.float64).reshape(-1)
    if v.size == 1:
        return np.full(n, float(v[0]))
    if v.size != n:
        raise UnsupportedOptionError(f"{what} has {v.size} values for {n} neurons")
    return v


def _check_finite(arr: np.ndarray, where: str) -> None:
    if not np.all(np.isfinite(arr)):
        raise InvalidInputError(f"{where} contains NaN or inf; the model cannot be exported")


def _rows(w: np.ndarray, delay_ms: float):
    """Split a dense (n_post, n_pre) weight matrix into excitatory / inhibitory FromListConnector rows
    (PyNN convention for current-based cells: inhibitory weights are negative)."""
    post, pre = np.nonzero(w)
    vals = w[post, pre]
    rows = np.stack([pre.astype(np.float64), post.astype(np.float64), vals, np.full(vals.shape, delay_ms)], 1)
    return rows[vals > 0], rows[vals < 0]


def expand_counts(counts, copies: int) -> np.ndarray:
    """Graded input (T, B, n) of spike counts 0..``copies`` -> a 0/1 raster (T, B, copies * n) in which
    source ``c * n + i`` fires at step ``t`` when ``counts[t, :, i] > c``: the exported input population
    (a spike source emits at most one spike per neuron and step on SpiNNaker)."""
    x = np.asarray(counts)
    if x.ndim != 3:
        raise InvalidInputError(f"inputs must be time-major (T, B, n_inputs), got shape {x.shape}")
    if not np.all(np.isfinite(x)) or np.any(x < 0) or np.any(x != np.round(x)):
        raise InvalidInputError("SpiNNaker inputs are spike sources: inputs must be non-negative whole spike counts "
                                "per step (this data set's encoding gives graded values; use a spike encoding)")
    top = int(x.max(initial=0))
    if top > copies:
        raise InvalidInputError(f"inputs carry up to {top} spikes per channel and step, but the network was "
                                f"exported with input_copies={copies}; export again with input_copies >= {top}")
    return np.concatenate([(x > c) for c in range(copies)], axis=2).astype(np.uint8)


def build_network(model, dt: float, v_scale: float = 10.0, subtract: str = "reset", fir_steps: int = 0,
                  input_copies: int = 1) -> Network:
    """The PyNN description of ``model`` (a SpikingClassifier) for a time step of ``dt`` seconds;
    ``v_scale`` mV stand for one unit of the model's membrane. Subtract-reset layers: ``subtract="reset"``
    (standard cell, reset to ``theta (1 - 1/beta)``, approximate) or ``"fir"`` (memoryless cells and
    ``fir_steps`` delayed copies of every synapse, exact for sequences of at most ``fir_steps`` steps).
    ``input_copies`` = C: inputs that are spike counts up to C per step become C source neurons per
    channel (:func:`expand_counts`), each connected with the channel's weights."""
    from neuroadapt.nn.layers import LIFLayer, LIReadout
    from neuroadapt.nn.neurons import Leaky, RLeaky, RSynaptic, Synaptic

    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise InvalidInputError(f"dt must be a positive number of seconds, got {dt!r}")
    if not (math.isfinite(v_scale) and v_scale > 0):
        raise InvalidInputError(f"v_scale must be a positive number of mV, got {v_scale!r}")
    layers, readout = getattr(model, "layers", None), getattr(model, "readout", None)
    if layers is None or not isinstance(readout, LIReadout) or not all(isinstance(l, LIFLayer) for l in layers):
        raise UnsupportedOptionError(f"the SpiNNaker export takes a SpikingClassifier (LIFLayer stack + LIReadout), "
                                     f"got {type(model).__name__}")
    if subtract not in ("reset", "fir"):
        raise UnsupportedOptionError(f"subtract={subtract!r}: choose 'reset' or 'fir'")
    if subtract == "fir" and not (isinstance(fir_steps, int) and 1 <= fir_steps <= MAX_DELAY_STEPS):
        raise UnsupportedOptionError(f"fir_steps must be an integer in 1..{MAX_DELAY_STEPS} (SpiNNaker's longest "
                                     f"delay, with delay extensions), got {fir_steps!r}")
    if not (isinstance(input_copies, int) and not isinstance(input_copies, bool) and 1 <= input_copies <= 255):
        raise UnsupportedOptionError(f"input_copies (the most spikes an input channel sends in one step) must be an "
                                     f"integer in 1..255, got {input_copies!r}")
    h = dt * 1e3
    n_in = layers[0].in_features if len(layers) else readout.in_features
    pops = [Population("input", n_in * input_copies, "SpikeSourceArray", role="input", lag=INPUT_LAG)]
    prev, prev_lag = "input", INPUT_LAG
    pending: dict = {}  # (pre, post, receptor) -> [kind, row blocks]: one Projection each (rows carry delays)

    def connect(pre, post, w, kind, delay=h):
        for rows, rec in zip(_rows(w, delay), ("excitatory", "inhibitory")):
            if len(rows):
                pending.setdefault((pre, post, rec), [kind, []])[1].append(rows)

    def add_bias(i, post, b, pre_lag, kern=None):
        if b is None or not np.any(b):
            return
        _check_finite(b, f"{post} bias")
        pops.append(Population(f"bias{i}", 1, "SpikeSourceArray", role="bias", lag=pre_lag))
        for k in range(1 if kern is None else len(kern)):
            connect(f"bias{i}", post, (b if kern is None else b * kern[k])[:, None], "bias", (k + 1) * h)

    for i, layer in enumerate(layers):
        nrn, n = layer.neuron, layer.out_features
        label = f"hidden{i}"
        synaptic = isinstance(nrn, (Synaptic, RSynaptic))
        recurrent = isinstance(nrn, (RLeaky, RSynaptic))
        if not isinstance(nrn, (Leaky, Synaptic, RLeaky, RSynaptic)):
            raise UnsupportedOptionError(f"layer {i}: neuron {type(nrn).__name__} cannot be exported to SpiNNaker")
        g = nrn.graded_spikes_factor
        if g.requires_grad or bool((g != 1).any()):
            raise UnsupportedOptionError(f"layer {i}: graded spikes cannot be exported (SpiNNaker spikes carry no payload)")
        if not getattr(nrn, "reset_delay", True) and (nrn.reset_mechanism != "zero" or isinstance(nrn, RSynaptic)):
            raise UnsupportedOptionError(f"layer {i}: reset_delay=False with a {nrn.reset_mechanism!r} reset has no "
                                         f"PyNN equivalent here; use reset 'zero' (reset at the spike, not RSynaptic) or reset_delay=True")
        if nrn.reset_mechanism not in ("subtract", "zero"):
            raise UnsupportedOptionError(f"layer {i}: reset mechanism {nrn.reset_mechanism!r} has no PyNN "
                                         f"equivalent; retrain with reset 'zero' or 'subtract'")
        beta = _per_neuron(nrn.beta.clamp(0, 1), n, f"layer {i} beta")
        thr = _per_neuron(nrn.threshold, n, f"layer {i} threshold")
        if not np.all(thr > 0):
            raise UnsupportedOptionError(f"layer {i}: thresholds must be positive for PyNN cells (v_thresh above "
                                         f"v_rest = 0), got a minimum of {float(thr.min()):g}")
        tau_m = tau_from_decay(beta, dt)
        w = _np(layer.fc.weight) * v_scale        # mV of membrane effect per input spike
        if i == 0:
            w = np.tile(w, (1, input_copies))     # source c * n_in + j carries channel j's (c+1)-th spike
        b = _np(layer.fc.bias) * v_scale if layer.fc.bias is not None else np.zeros(n)
        _check_finite(w, f"layer {i} weight")
        alpha = _per_neuron(nrn.alpha.clamp(0, 1), n, f"layer {i} alpha") if synaptic else None
        rec_w = None
        if recurrent:
            if nrn.all_to_all:
                rec_w = _np(nrn.recurrent.weight) * v_scale
                if nrn.recurrent.bias is not None:
                    b = b + _np(nrn.recurrent.bias) * v_scale
            else:
                rec_w = np.diag(_per_neuron(nrn.V, n, f"layer {i} V") * v_scale)
            _check_finite(rec_w, f"layer {i} recurrent weight")
        if nrn.reset_mechanism == "subtract" and subtract == "fir":
            lag = prev_lag + 1
            pops.append(_fir_layer(label, n, thr * v_scale, lag, dt))
            kern = _kernel(beta, alpha, fir_steps)                       # (K, n): effect of an input k steps ago
            for k in range(fir_steps):
                d = (k + 1) * h
                connect(prev, label, w * kern[k][:, None], "feedforward", d)
                if rec_w is not None:
                    connect(label, label, rec_w * kern[k][:, None], "recurrent", d)
                connect(label, label, np.diag(-thr * v_scale * beta**k), "reset", d)
            add_bias(i, label, b, prev_lag, kern)
            prev, prev_lag = label, lag
            continue
        params = {"tau_m": tau_m, "cm": np.full(n, CM_NF), "v_rest": np.zeros(n), "v_thresh": thr * v_scale,
                  "i_offset": np.zeros(n)}
        if synaptic:
            tau_s = tau_from_decay(alpha, dt)
            same = np.isclose(tau_s, tau_m, rtol=1e-12)
            p21 = np.where(same, h / CM_NF * beta,
                           tau_s * tau_m / (CM_NF * np.where(same, 1.0, tau_m - tau_s)) * (beta - alpha))
            scale = 1.0 / p21                      # nA per mV of membrane effect
            params.update(tau_syn_E=tau_s, tau_syn_I=tau_s)
            lag = prev_lag + 2
        else:
            scale = np.ones(n)
            lag = prev_lag + 1
        # snnTorch's delayed zero reset of Synaptic / recurrent layers zeroes the whole next step (input
        # included): a refractory step; with reset_delay=False the membrane is zeroed at the spike itself
        zero_all = (synaptic or recurrent) and getattr(nrn, "reset_delay", True)
        if nrn.reset_mechanism == "zero":
            params["v_reset"] = np.zeros(n)
            params["tau_refrac"] = np.full(n, h if zero_all else 0.0)
        else:
            params["v_reset"] = thr * v_scale * (1 - 1 / beta)
            params["tau_refrac"] = np.zeros(n)
        pop = Population(label, n, "IF_curr_exp" if synaptic else "IF_curr_delta", params, lag=lag)
        pop.v_init = np.zeros(n)
        pops.append(pop)
        connect(prev, label, w * scale[:, None], "feedforward")
        add_bias(i, label, b * scale, prev_lag)
        if rec_w is not None:
            connect(label, label, rec_w * scale[:, None], "recurrent")
        prev, prev_lag = label, lag
    n = readout.out_features
    beta = _per_neuron(readout.beta.clamp(0, 1), n, "readout beta")
    w = _np(readout.fc.weight) * v_scale
    if not len(layers):
        w = np.tile(w, (1, input_copies))
    _check_finite(w, "readout weight")
    params = {"tau_m": tau_from_decay(beta, dt), "cm": np.full(n, CM_NF), "v_rest": np.zeros(n),
              "v_thresh": np.full(n, READOUT_THRESHOLD_MV), "v_reset": np.zeros(n), "tau_refrac": np.zeros(n),
              "i_offset": np.zeros(n)}
    pop = Population("readout", n, "IF_curr_delta", params, lag=prev_lag + 1, record_v=True, role="readout")
    pop.v_init = np.zeros(n)
    pops.append(pop)
    connect(prev, "readout", w, "feedforward")
    add_bias(len(layers), "readout", _np(readout.fc.bias) * v_scale if readout.fc.bias is not None else None, prev_lag)
    projs = [Projection(pre, post, np.concatenate(blocks), rec, kind)
             for (pre, post, rec), (kind, blocks) in pending.items()]
    net = Network(dt=float(dt), populations=pops, projections=projs, v_scale=float(v_scale),
                  input_channels=int(n_in), input_copies=int(input_copies))
    return net

