"""Brian2 twin of HLOP's lateral Hebbian circuit: a rate network learning a principal subspace.

Independent of neuroadapt's torch code. Network (equations as data, Brian2 syntax):

* ``inp``: ``n`` rate units; ``x_i(t) = stim(t, i)`` (a ``TimedArray``, one sample per step) and
  ``xhat_i`` -- the lateral feedback ``sum_j H_ji y_j`` (a summed variable);
* ``out``: ``M`` subspace neurons, ``y_j = sum_i H_ji x_i`` (summed variable);
* ``S``: all-to-all synapses inp -> out carrying ``H_ji``; once per step (after both sums)::

      H_ji += plastic_j * eta * y_j * (x_i - xhat_i)   (Hebbian y x minus anti-Hebbian y (H^T y))

``plastic_j`` is 0 for the first ``n_frozen`` neurons (an old task's block) and 1 otherwise.

This is Oja's subspace rule, one sample per step -- what :class:`neuroadapt.learn.hlop.LateralSubspace`
does with batch size 1, ``iterations=1``, ``momentum=0`` and no clamp. Order within a step (Brian2
runs a summed-variable update just before its target group): ``y`` (order of ``out`` = 0) then
``xhat`` (order of ``inp`` = 2), then the weight update in the ``synapses`` slot.
"""
from __future__ import annotations

import numpy as np

from neuroadapt.errors import ReferenceUnavailableError, ShapeError

__all__ = ["oja_brian2", "INPUT_EQUATIONS", "OUTPUT_EQUATIONS", "SYNAPSE_EQUATIONS", "UPDATE"]

INPUT_EQUATIONS = """
x = stim(t, i) : 1
xhat : 1
"""
OUTPUT_EQUATIONS = """
y : 1
"""
SYNAPSE_EQUATIONS = """
H : 1
plastic : 1 (constant)
y_post = H * x_pre : 1 (summed)
xhat_pre = H * y_post : 1 (summed)
"""
UPDATE = "H += plastic * eta * y_post * (x_pre - xhat_pre)"


def oja_brian2(samples, H0, eta: float, record_every: int = 0, n_frozen: int = 0, target: str = "numpy"):
    """Run the circuit on ``samples`` (S, n), one per step, from ``H0`` (M, n).

    Returns ``(H, history)``: the final H (M, n) and, when ``record_every > 0``, a list of H
    every ``record_every`` steps (starting with H0)."""
    try:
        import brian2 as b2
    except ImportError as exc:  # pragma: no cover - brian2 is a dependency
        raise ReferenceUnavailableError(f"Brian2 is not importable: {exc}") from None
    X = np.asarray(samples, dtype=np.float64)
    H0 = np.asarray(H0, dtype=np.float64)
    if X.ndim != 2 or H0.ndim != 2 or X.shape[1] != H0.shape[1]:
        raise ShapeError(f"oja_brian2: samples (S, n) and H0 (M, n) need the same n; got {X.shape} and {H0.shape}")
    S_steps, n = X.shape
    M = H0.shape[0]
    b2.start_scope()
    b2.prefs.codegen.target = target
    b2.defaultclock.dt = 1 * b2.ms
    stim = b2.TimedArray(X, dt=1 * b2.ms)
    inp = b2.NeuronGroup(n, INPUT_EQUATIONS, order=2)
    out = b2.NeuronGroup(M, OUTPUT_EQUATIONS, order=0)
    syn = b2.Synapses(inp, out, SYNAPSE_EQUATIONS)
    syn.connect()                                  # all to all; H read and written via syn.i / syn.j
    syn.H = H0[np.asarray(syn.j[:]), np.asarray(syn.i[:])]
    syn.plastic = (np.asarray(syn.j[:]) >= int(n_frozen)).astype(float)
    syn.run_regularly(UPDATE, when="synapses")
    net = b2.Network(inp, out, syn)
    ns = {"stim": stim, "eta": float(eta)}
    history = []
    H = np.zeros((M, n))

    def read():
        H[np.asarray(syn.j[:]), np.asarray(syn.i[:])] = np.asarray(syn.H[:])
        return H.copy()

    if record_every:
        history.append(read())
        done = 0
        while done < S_steps:
            k = min(record_every, S_steps - done)
            net.run(k * b2.ms, namespace=ns)
            done += k
            history.append(read())
    else:
        net.run(S_steps * b2.ms, namespace=ns)
    return read(), history
