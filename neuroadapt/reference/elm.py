"""Independent references for the ELM neuron: float64 NumPy from the paper's equations, and a
continuous-time Brian2 model of the trace and memory dynamics.

Neither imports torch or :mod:`neuroadapt.core`; both take the parameters as plain arrays
(``ELM.reference_params()`` makes them from a trained module) and simulate one sample,
``input_spikes`` of shape ``(T, n_in)``.  The NumPy twin follows Spieler et al. (ICLR 2024)
literally: one trace per *synapse*, then the branch sums, then the MLP on the concatenation
``[b_t, κ_m ⊙ m_{t-1}]``::

    s_t  = κ_s s_{t-1} + w_s ⊙ x_t[route]           κ_s = exp(-dt/τ_s)
    b_t  = Σ_{j in branch i} s_t[j]
    Δm_t = 1.7159 tanh(2/3 · MLP([b_t, κ_m ⊙ m_{t-1}]))   κ_m = exp(-dt/τ_m)
    v1:  m_t = κ_m m_{t-1} + λ (1 - κ_m) Δm_t;   v2:  m_t = κ_m m_{t-1} + (1 - exp(-dt λ/τ_m)) Δm_t
    y_t  = W_y m_t + b_y

The Brian2 twin treats the leaks as what they are in continuous time -- ``ds/dt = -s/τ_s``
and ``dm/dt = -m/τ_m``, integrated exactly over each step -- and the rest as impulses: input
spikes arrive through ``Synapses`` (``s += w_s · count``), and the MLP is a
``network_operation`` that, once per step after the synapses, reads the branch sums and the
decayed memory (which *is* ``κ_m m_{t-1}``) and adds ``gain ⊙ Δm`` to ``m``.
"""

from __future__ import annotations

import numpy as np

from neuroadapt.errors import InvalidInputError, ReferenceUnavailableError, ShapeError

__all__ = ["simulate_numpy", "simulate_brian2", "compare_states"]


def _check(input_spikes, p: dict) -> np.ndarray:
    x = np.asarray(input_spikes, dtype=np.float64)
    if x.ndim != 2:
        raise ShapeError(f"input_spikes must be (T, n_in), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise InvalidInputError("input_spikes contains NaN or inf")
    if np.asarray(p["route"]).max() >= x.shape[1]:
        raise ShapeError(f"route reads input {int(np.max(p['route']))} but input_spikes has {x.shape[1]} channels")
    return x


def _act(name: str):
    return {"relu": lambda z: np.maximum(z, 0.0), "silu": lambda z: z / (1.0 + np.exp(-z)), "tanh": np.tanh}[name]


def _gain(p: dict) -> np.ndarray:
    tau_m, dt, lam = np.asarray(p["tau_m"], dtype=np.float64), p["dt"], p["lambda_value"]
    if p["version"] == "v1":
        return lam * (1.0 - np.exp(-dt / tau_m))
    return 1.0 - np.exp(-dt * lam / tau_m)


def _delta(p: dict, b: np.ndarray, km_m: np.ndarray) -> np.ndarray:
    """Δm = 1.7159 tanh(2/3 · MLP([b, κ_m m]))."""
    act = _act(p["activation"])
    h = np.concatenate([b, km_m])
    layers = p["mlp"]
    for w, bias in layers[:-1]:
        h = act(w @ h + bias)
    w, bias = layers[-1]
    return 1.7159 * np.tanh(2.0 / 3.0 * (w @ h + bias))


def _branch_sum(s: np.ndarray, n_branches: int) -> np.ndarray:
    return s.reshape(n_branches, -1).sum(axis=1)


def simulate_numpy(input_spikes, p: dict) -> dict:
    """Run the equations (module docstring) step by step in float64.

    Returns ``{"trace": (T, n_branches), "memory": (T, d_m), "output": (T, d_o)}``."""
    x = _check(input_spikes, p)
    route, w_s = np.asarray(p["route"]), np.asarray(p["w_s"], dtype=np.float64)
    k_s = np.exp(-p["dt"] / p["tau_s"])
    k_m = np.exp(-p["dt"] / np.asarray(p["tau_m"], dtype=np.float64))
    gain = _gain(p)
    wy, by = p["readout"]
    s = np.zeros(route.size)
    m = np.zeros(k_m.size)
    out = {"trace": [], "memory": [], "output": []}
    for t in range(x.shape[0]):
        s = k_s * s + w_s * x[t, route]
        b = _branch_sum(s, p["n_branches"])
        km_m = k_m * m
        m = km_m + gain * _delta(p, b, km_m)
        out["trace"].append(b)
        out["memory"].append(m)
        out["output"].append(wy @ m + by)
    return {k: np.array(v) for k, v in out.items()}


def simulate_brian2(input_spikes, p: dict) -> dict:
    """The continuous-time Brian2 model (module docstring); same return value as
    :func:`simulate_numpy`.  Runs with Brian2's ``numpy`` code generation (no compiler)."""
    try:
        import brian2 as b2
    except ImportError as exc:  # pragma: no cover - brian2 is a dependency
        raise ReferenceUnavailableError(f"Brian2 is not importable ({exc}); pip install brian2") from None
    x = _check(input_spikes, p)
    T, n_in = x.shape
    route, w_s = np.asarray(p["route"]), np.asarray(p["w_s"], dtype=np.float64)
    n_syn, n_br = route.size, p["n_branches"]
    taus_m = np.asarray(p["tau_m"], dtype=np.float64)
    d_m = taus_m.size
    dt = p["dt"] * b2.second
    gain = _gain(p)
    wy, by = p["readout"]
    prev_target = b2.prefs.codegen.target
    b2.prefs.codegen.target = "numpy"
    try:
        net = b2.Network()
        # inputs: one spike event per non-zero (step, channel), its count as a weight
        steps, chans = np.nonzero(x)
        gen = b2.SpikeGeneratorGroup(n_in * int(max(1, x.max())), [], [] * b2.second, dt=dt)
        counts = x[steps, chans]
        # a count c > 1 is sent as c spikes through c parallel generator slots (k * n_in + channel)
        idx, times = [], []
        for st, ch, c in zip(steps, chans, counts.astype(int)):
            for k in range(c):
                idx.append(k * n_in + ch)
                times.append(st)
        gen.set_spikes(np.array(idx, dtype=int), np.array(times) * dt)
        syn_group = b2.NeuronGroup(n_syn, "ds/dt = -s / tau_s : 1\ntau_s : second (constant)", method="exact", dt=dt)
        syn_group.tau_s = p["tau_s"] * b2.second
        conn = b2.Synapses(gen, syn_group, "w : 1", on_pre="s_post += w", dt=dt)
        pre = np.concatenate([k * n_in + route for k in range(int(max(1, x.max())))])
        post = np.tile(np.arange(n_syn), int(max(1, x.max())))
        conn.connect(i=pre.astype(int), j=post.astype(int))
        conn.w = np.tile(w_s, int(max(1, x.max())))
        mem = b2.NeuronGroup(d_m, "dm/dt = -m / tau_m : 1\ntau_m : second (constant)", method="exact", dt=dt)
        mem.tau_m = taus_m * b2.second
        rec = {"trace": np.zeros((T, n_br)), "memory": np.zeros((T, d_m))}
        step = {"t": 0}

        @b2.network_operation(dt=dt, when="after_synapses")
        def mlp_update():
            t = step["t"]
            if t >= T:
                return
            b = _branch_sum(np.asarray(syn_group.s[:]), n_br)
            km_m = np.asarray(mem.m[:])            # already decayed over this step: κ_m m_{t-1}
            mem.m[:] = km_m + gain * _delta(p, b, km_m)
            rec["trace"][t] = b
            rec["memory"][t] = np.asarray(mem.m[:])
            step["t"] = t + 1

        net.add(gen, syn_group, conn, mem, mlp_update)
        net.run(T * dt)
    finally:
        b2.prefs.codegen.target = prev_target
    rec["output"] = rec["memory"] @ np.asarray(wy).T + by
    return rec


def compare_states(ref: dict, other: dict) -> dict:
    """Largest absolute differences of trace, memory and output between two runs."""
    out = {}
    for key in ("trace", "memory", "output"):
        a, b = np.asarray(ref[key]), np.asarray(other[key])
        if a.shape != b.shape:
            raise ShapeError(f"{key}: shapes differ, {a.shape} vs {b.shape}")
        out[f"max_abs_d{key}"] = float(np.max(np.abs(a - b))) if a.size else 0.0
    return out
