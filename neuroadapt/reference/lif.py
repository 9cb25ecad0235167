"""Independent references for the LIF and CUBA-LIF dynamics: a Brian2 twin and NumPy.

Neither function imports torch or any other part of neuroadapt's dynamics; they exist to
check :mod:`neuroadapt.core` / :mod:`neuroadapt.nn` against something neuroadapt did not
write.  Both simulate one sample: ``input_spikes`` is ``(T, N_in)`` (time-major) and
``weights`` is ``(N_out, N_in)``, so the input current of step ``t`` is
``x_t = weights @ input_spikes[t] (+ bias)``.

Dynamics (snnTorch 1.0, ``reset_delay=True``; ``H(u) = 1 if u > 0 else 0``; all states
start at 0; ``β = exp(-dt/τ_mem)``, ``α = exp(-dt/τ_syn)``)::

    r_t = H(m_{t-1} - θ)                      reset decided by the previous membrane
    leaky      subtract: m_t = β m_{t-1} + x_t - r_t θ
               zero:     m_t = β (1 - r_t) m_{t-1} + x_t
               none:     m_t = β m_{t-1} + x_t
    synaptic   syn_t = α syn_{t-1} + x_t      (never reset)
               subtract: m_t = β m_{t-1} + syn_t - r_t θ
               zero:     m_t = (1 - r_t)(β m_{t-1} + syn_t)
               none:     m_t = β m_{t-1} + syn_t
    s_t = H(m_t - θ);  the reported membrane is m_t (before the reset applied at t+1)

How the Brian2 twin realises them (see ``docs/reference.md``):

* the leaks are continuous ODEs integrated exactly (``method='exact'``):
  ``dv/dt = -k_mem v``, ``dI/dt = -k_syn I`` with ``k = -ln(decay)/dt``, so one step
  multiplies by ``exp(-dt k) = β`` (resp. α);
* the network schedule is ``start, groups, synapses, thresholds, resets, end``: each step
  first decays (groups), then delivers input spikes (synapses), then thresholds;
* inputs come from a ``SpikeGeneratorGroup`` that emits in the ``start`` slot, so a spike
  at step ``t`` reaches ``v`` (leaky) or ``I`` (synaptic) in the same step;
* the CUBA current enters the membrane once per step, ``v += I`` after the input spikes
  (a ``run_regularly`` in the synapses slot): this is the forward-Euler current-to-voltage
  coupling of snnTorch's ``Synaptic`` and NIR's ``CubaLIF``, not the exact solution of the
  coupled ODE pair;
* there is no ``reset=`` statement.  A neuron's spike reaches itself through a one-to-one
  ``Synapses`` object with zero delay; because the synapses slot precedes the thresholds
  slot, a spike emitted at step ``t`` is delivered in step ``t+1``, after the decay: this is
  snnTorch's delayed reset (``v -= θ``, or ``v = 0`` placed before the input for Leaky and
  after the current coupling for Synaptic).  A delay of ``dt`` would reset one step late;
* ``v`` and ``I`` are recorded in the thresholds slot before the thresholder runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuroadapt.errors import (InvalidInputError, ReferenceUnavailableError, ShapeError,
                               UnsupportedOptionError)

NEURONS = ("leaky", "synaptic")
RESETS = ("subtract", "zero", "none")

# Equations as data (Brian2 syntax).  k_* are leak rates, theta the threshold, b a bias
# current added once per step.
LEAKY_EQUATIONS = """
dv/dt = -k_mem * v : 1
k_mem : Hz (constant)
theta : 1 (constant)
b : 1 (constant)
"""
SYNAPTIC_EQUATIONS = """
dv/dt = -k_mem * v : 1
dI/dt = -k_syn * I : 1
k_mem : Hz (constant)
k_syn : Hz (constant)
theta : 1 (constant)
b : 1 (constant)
"""
THRESHOLD = "v > theta"
SCHEDULE = ["start", "groups", "synapses", "thresholds", "resets", "end"]
RESET_CODE = {"subtract": "v_post -= theta_post", "zero": "v_post = 0"}


@dataclass(frozen=True)
class LIFSpec:
    """Validated parameters of one simulation (per-neuron arrays of length ``N_out``)."""

    neuron: str
    reset_mechanism: str
    beta: np.ndarray
    alpha: np.ndarray | None
    threshold: np.ndarray
    bias: np.ndarray
    dt: float


def _per_neuron(name, value, n):
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise ShapeError(f"{name} must be a scalar or have shape ({n},) (one per output "
                         f"neuron); got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InvalidInputError(f"{name} contains NaN or inf")
    return arr


def _decay(name, decay, tau_name, tau, dt, n):
    if (decay is None) == (tau is None):
        raise InvalidInputError(f"give exactly one of {name} and {tau_name} "
                                f"(got {name}={decay!r}, {tau_name}={tau!r})")
    if tau is not None:
        tau = _per_neuron(tau_name, tau, n)
        if np.any(tau <= 0):
            raise InvalidInputError(f"{tau_name} must be positive (seconds); got {tau}")
        return np.exp(-dt / tau)
    arr = _per_neuron(name, decay, n)
    if np.any((arr < 0) | (arr > 1)):
        raise InvalidInputError(f"{name} must lie in [0, 1] (snnTorch clamps it there); "
                                f"got {decay!r}")
    return arr


def check_inputs(input_spikes, weights, *, neuron="leaky", beta=None, tau_mem=None,
                 alpha=None, tau_syn=None, threshold=1.0, reset_mechanism="subtract",
                 dt=1e-3, bias=None):
    """Validate and normalise the arguments shared by both simulators.

    Returns ``(input_spikes float64 (T, N_in), weights float64 (N_out, N_in), LIFSpec)``.
    """
    if neuron not in NEURONS:
        raise UnsupportedOptionError(f"neuron {neuron!r} is not supported; use one of {NEURONS}")
    if reset_mechanism not in RESETS:
        raise UnsupportedOptionError(f"reset_mechanism {reset_mechanism!r} is not supported; "
                                     f"use one of {RESETS}")
    s = np.asarray(input_spikes, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if s.ndim != 2:
        raise ShapeError(f"input_spikes must be (T, N_in) for one time-major sample; got "
                         f"shape {s.shape}")
    if w.ndim != 2 or w.shape[1] != s.shape[1]:
        raise ShapeError(f"weights must be (N_out, N_in) with N_in={s.shape[1]} matching "
                         f"input_spikes {s.shape}; got shape {w.shape}")
    if s.shape[0] == 0:
        raise ShapeError("input_spikes has no time steps (T = 0)")
    if not (np.all(np.isfinite(s)) and np.all(np.isfinite(w))):
        raise InvalidInputError("input_spikes / weights contain NaN or inf")
    if not (float(dt) > 0 and np.isfinite(dt)):
        raise InvalidInputError(f"dt must be a positive number of seconds; got {dt!r}")
    dt, n = float(dt), w.shape[0]
    beta = _decay("beta", beta, "tau_mem", tau_mem, dt, n)
    if neuron == "synaptic":
        alpha = _decay("alpha", alpha, "tau_syn", tau_syn, dt, n)
    elif alpha is not None or tau_syn is not None:
        raise UnsupportedOptionError("alpha / tau_syn only apply to neuron='synaptic'; "
                                     "remove them for neuron='leaky'")
    spec = LIFSpec(neuron=neuron, reset_mechanism=reset_mechanism, beta=beta, alpha=alpha,
                   threshold=_per_neuron("threshold", threshold, n),
                   bias=_per_neuron("bias", 0.0 if bias is None else bias, n), dt=dt)
    return s, w, spec


def _result(spikes, mem, syn, dt):
    spikes = np.asarray(spikes, dtype=np.int8)
    times = [np.nonzero(spikes[:, j])[0] * dt for j in range(spikes.shape[1])]
    return {"spikes": spikes, "mem": mem, "syn": syn, "spike_times": times, "dt": dt}


def simulate_numpy(input_spikes, weights, *, neuron="leaky", beta=None, tau_mem=None,
                   alpha=None, tau_syn=None, threshold=1.0, reset_mechanism="subtract",
                   dt=1e-3, bias=None):
    """Run the equations in the module docstring directly, step by step, in float64.

    Unlike the Brian2 twin, ``input_spikes`` may hold any finite real values here.
    Returns ``dict(spikes=(T, N) int8 0/1, mem=(T, N) float64, syn=(T, N) float64 or
    None, spike_times=list of N arrays (seconds, t*dt), dt=dt)``.
    """
    s, w, p = check_inputs(input_spikes, weights, neuron=neuron, beta=beta, tau_mem=tau_mem,
                           alpha=alpha, tau_syn=tau_syn, threshold=threshold,
                           reset_mechanism=reset_mechanism, dt=dt, bias=bias)
    T, n = s.shape[0], w.shape[0]
    x = s @ w.T + p.bias                               # (T, N): x_t = W s_t + b
    mem_out, spk_out = np.zeros((T, n)), np.zeros((T, n))
    syn_out = np.zeros((T, n)) if p.neuron == "synaptic" else None
    m, syn = np.zeros(n), np.zeros(n)
    for t in range(T):
        r = (m - p.threshold > 0).astype(np.float64)
        if p.neuron == "leaky":
            if p.reset_mechanism == "subtract":
                m = p.beta * m + x[t] - r * p.threshold
            elif p.reset_mechanism == "zero":
                m = p.beta * (1 - r) * m + x[t]
            else:
                m = p.beta * m + x[t]
        else:
            syn = p.alpha * syn + x[t]
            if p.reset_mechanism == "subtract":
                m = p.beta * m + syn - r * p.threshold
            elif p.reset_mechanism == "zero":
                m = (1 - r) * (p.beta * m + syn)
            else:
                m = p.beta * m + syn
            syn_out[t] = syn
        mem_out[t] = m
        spk_out[t] = m - p.threshold > 0
    return _result(spk_out, mem_out, syn_out, p.dt)


def _import_brian2():
    try:
        import brian2
    except Exception as exc:  # ImportError, or a broken install failing at import
        raise ReferenceUnavailableError(
            f"the Brian2 twin needs brian2, which cannot be imported here ({exc}); install "
            "it with `pip install brian2` or use simulate_numpy") from exc
    return brian2


def _rates(decay, dt):
    """Leak rate k (1/s) with exp(-dt k) == decay: 0 for decay 1, inf for decay 0."""
    with np.errstate(divide="ignore"):
        return -np.log(decay) / dt


def simulate_brian2(input_spikes, weights, *, neuron="leaky", beta=None, tau_mem=None,
                    alpha=None, tau_syn=None, threshold=1.0, reset_mechanism="subtract",
                    dt=1e-3, bias=None):
    """Simulate the layer as a Brian2 network (runtime mode, numpy code generation, float64).

    Parameters: ``input_spikes`` (T, N_in) of 0/1; ``weights`` (N_out, N_in); ``neuron``
    ``"leaky"`` or ``"synaptic"``; exactly one of ``beta`` / ``tau_mem`` (seconds) and, for
    ``"synaptic"``, exactly one of ``alpha`` / ``tau_syn``; ``threshold``; ``reset_mechanism``
    ``"subtract"`` / ``"zero"`` / ``"none"``; ``dt`` (seconds); optional ``bias`` added to the
    input current every step.  Decays, threshold and bias may be scalars or per-neuron
    arrays of shape ``(N_out,)``.

    Returns the same dict as :func:`simulate_numpy`; ``mem`` / ``syn`` are Brian2's ``v`` /
    ``I`` recorded each step before thresholding, ``spikes`` come from a ``SpikeMonitor``.
    Raises ``ReferenceUnavailableError`` if brian2 cannot be imported.
    """
    s, w, p = check_inputs(input_spikes, weights, neuron=neuron, beta=beta, tau_mem=tau_mem,
                           alpha=alpha, tau_syn=tau_syn, threshold=threshold,
                           reset_mechanism=reset_mechanism, dt=dt, bias=bias)
    if not np.all((s == 0) | (s == 1)):
        t, i = np.argwhere((s != 0) & (s != 1))[0]
        raise InvalidInputError(
            f"the Brian2 twin feeds inputs through a SpikeGeneratorGroup, which carries "
            f"binary spikes only; input_spikes[{t}, {i}] = {float(s[t, i])} (use simulate_numpy "
            "for graded inputs)")
    b2 = _import_brian2()
    saved = (b2.prefs.codegen.target, b2.prefs.core.default_float_dtype)
    b2.prefs.codegen.target = "numpy"      # no compiler needed; runtime mode
    b2.prefs.core.default_float_dtype = np.float64
    try:
        return _run_brian2(b2, s, w, p)
    finally:
        b2.prefs.codegen.target, b2.prefs.core.default_float_dtype = saved


def _run_brian2(b2, s, w, p):
    T, n_in = s.shape
    n = w.shape[0]
    second, Hz = b2.second, b2.Hz
    clock = b2.Clock(dt=p.dt * second)
    steps, idx = np.nonzero(s)
    inputs = b2.SpikeGeneratorGroup(n_in, idx, steps * p.dt * second, clock=clock,
                                    when="start", name="inputs*")
    cuba = p.neuron == "synaptic"
    target = "I" if cuba else "v"
    G = b2.NeuronGroup(n, SYNAPTIC_EQUATIONS if cuba else LEAKY_EQUATIONS,
                       threshold=THRESHOLD, reset="", method="exact", clock=clock,
                       name="lif*")
    G.k_mem = _rates(p.beta, p.dt) * Hz
    if cuba:
        G.k_syn = _rates(p.alpha, p.dt) * Hz
    G.theta = p.threshold
    G.b = p.bias

    # Order inside the synapses slot (all after the exact decay of the groups slot).
    order = {"reset_first": -1, "input": 0, "bias": 1, "couple": 2, "reset_last": 3}
    ii, jj = np.nonzero(w.T)                        # pre (input) index, post (neuron) index
    objects = [inputs, G]
    if len(ii):                                     # Brian2 rejects an empty connect()
        syn_in = b2.Synapses(inputs, G, "w : 1", on_pre=f"{target}_post += w", clock=clock,
                             name="input_synapses*")
        syn_in.pre.order = order["input"]  # a pathway's order is its own, not its Synapses'
        syn_in.connect(i=ii, j=jj)
        syn_in.w = w[jj, ii]
        objects.append(syn_in)
    if np.any(p.bias != 0):
        objects.append(G.run_regularly(f"{target} += b", clock=clock, when="synapses",
                                       order=order["bias"], name="bias*"))
    if cuba:  # forward-Euler coupling of the current into the membrane, once per step
        objects.append(G.run_regularly("v += I", clock=clock, when="synapses",
                                       order=order["couple"], name="couple*"))
    if p.reset_mechanism != "none":
        # Leaky zero: m_t = β(1-r)m + x -> zero before the input.  Synaptic zero:
        # (1-r)(βm + syn) -> zero after the coupling.  Subtract: last (linear anyway).
        first = p.reset_mechanism == "zero" and not cuba
        reset = b2.Synapses(G, G, on_pre=RESET_CODE[p.reset_mechanism], delay=0 * second,
                            clock=clock, name="delayed_reset*")
        reset.pre.order = order["reset_first" if first else "reset_last"]
        reset.connect(j="i")
        objects.append(reset)
    state = b2.StateMonitor(G, ["v", "I"] if cuba else ["v"], record=True, clock=clock,
                            when="thresholds", order=-1, name="state*")
    spikes = b2.SpikeMonitor(G, name="spikes*")
    net = b2.Network(*objects, state, spikes)
    net.schedule = SCHEDULE
    net.run(T * p.dt * second, namespace={})   # no implicit look-ups in the caller's scope

    mem = np.asarray(state.v, dtype=np.float64).T
    if mem.shape != (T, n):
        raise RuntimeError(f"Brian2 recorded {mem.shape[0]} steps, expected T={T} "
                           f"(dt={p.dt}); this is a bug in the twin")
    syn = np.asarray(state.I, dtype=np.float64).T if cuba else None
    spk = np.zeros((T, n), dtype=np.int8)
    step = np.rint(np.asarray(spikes.t / second) / p.dt).astype(np.int64)
    spk[step, np.asarray(spikes.i)] = 1
    return _result(spk, mem, syn, p.dt)


def compare(reference, other, *, mem_atol=1e-10):
    """Compare two runs given as dicts with ``spikes`` and ``mem`` (``syn`` optional).

    ``other`` may hold torch tensors or NumPy arrays of shape (T, N) (a singleton batch axis
    ``(T, 1, N)`` is squeezed).  Returns a dict with ``max_abs_dv``, ``max_abs_dsyn`` (or
    None), ``spike_mismatches`` (count of (t, n) entries that differ), ``n_spikes_reference``,
    ``n_spikes_other``, ``first_mismatch`` ((t, n) or None) and ``match`` (identical spikes
    and ``max_abs_dv <= mem_atol``).
    """
    def arr(x, name):
        a = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float64)
        if a.ndim == 3 and a.shape[1] == 1:
            a = a[:, 0]
        ref = np.asarray(reference["mem"]).shape
        if a.shape != ref:
            raise ShapeError(f"{name} has shape {a.shape}, the reference has {ref}")
        return a

    s_ref = arr(reference["spikes"], "reference spikes")
    s_oth = arr(other["spikes"], "spikes")
    dv = np.abs(arr(reference["mem"], "reference mem") - arr(other["mem"], "mem"))
    dsyn = None
    if reference.get("syn") is not None and other.get("syn") is not None:
        dsyn = float(np.max(np.abs(arr(reference["syn"], "reference syn")
                                   - arr(other["syn"], "syn"))))
    bad = np.argwhere(s_ref != s_oth)
    max_dv = float(np.max(dv))
    return {"max_abs_dv": max_dv, "max_abs_dsyn": dsyn, "spike_mismatches": int(len(bad)),
            "n_spikes_reference": int(s_ref.sum()), "n_spikes_other": int(s_oth.sum()),
            "first_mismatch": tuple(int(v) for v in bad[0]) if len(bad) else None,
            "match": bool(len(bad) == 0 and max_dv <= mem_atol)}
