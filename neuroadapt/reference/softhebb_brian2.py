"""A Brian2 twin of the soft winner-take-all Hebbian rule (SoftHebb) with lateral inhibition.

The network, one presentation per time step ``dt`` (numpy code generation, float64):

* ``inputs`` (D neurons): ``x_i`` = the presented vector, set from a ``TimedArray`` in the
  ``start`` slot;
* ``outputs`` (K neurons): ``u_k = sum_i w_ik x_i`` through the plastic synapses ``S``
  (a summed variable), excitation ``e_k = exp(u_k / tau)`` (``ex`` in the equations);
* ``pool`` (one inhibitory interneuron): collects ``Z = sum_l e_l`` from all outputs
  (summed variable) and feeds it back to every output through the ``lateral`` synapses:
  the competitive lateral inhibition is divisive, ``y_k = e_k / Z`` -- a soft WTA;
* plasticity on ``S`` in the ``end`` slot: ``w_ik += eta * y_k * (x_i - u_k * w_ik)``.

Schedule inside each step (slot ``groups``): ``u`` (order -1) -> ``Z`` (order 4) -> ``Z`` fed
back to the outputs (order 6); then the weight update (slot ``end``). Each presentation is
therefore one online SoftHebb step, the torch rule
(:func:`neuroadapt.learn.tta.hebbian.softhebb_delta`) applied to a batch of one. Nothing here
imports torch or neuroadapt's learning code.
"""
from __future__ import annotations

import numpy as np

from neuroadapt.errors import InvalidInputError, ReferenceUnavailableError, ShapeError

__all__ = ["softhebb_brian2", "softhebb_numpy"]


def _check(x, w0, eta, tau):
    x = np.asarray(x, dtype=np.float64)
    w0 = np.asarray(w0, dtype=np.float64)
    if x.ndim != 2 or w0.ndim != 2 or x.shape[1] != w0.shape[1] or len(x) == 0:
        raise ShapeError(f"softhebb twin needs presentations x (P, D), P >= 1, and weights w0 (K, D); "
                         f"got {x.shape} and {w0.shape}")
    if not (np.isfinite(x).all() and np.isfinite(w0).all()):
        raise InvalidInputError("softhebb twin: x and w0 must be finite")
    if not tau > 0 or not eta >= 0:
        raise InvalidInputError(f"softhebb twin: tau must be > 0 and eta >= 0, got tau={tau}, eta={eta}")
    return x, w0


def softhebb_numpy(x, w0, eta: float, tau: float = 1.0, anti_hebbian: bool = False) -> np.ndarray:
    """The same online rule from its equations, in NumPy (one presentation at a time)."""
    x, w = _check(x, w0, eta, tau)
    w = w.copy()
    for xi in x:
        u = w @ xi
        y = np.exp(u / tau) / np.exp(u / tau).sum()
        if anti_hebbian:
            y = np.where(np.arange(len(u)) == np.argmax(u), y, -y)
        w += eta * y[:, None] * (xi[None, :] - u[:, None] * w)
    return w


def softhebb_brian2(x, w0, eta: float, tau: float = 1.0) -> np.ndarray:
    """Weights (K, D) after presenting the rows of ``x`` (P, D) in order, starting from ``w0``.

    The plain (Hebbian) soft WTA only; the anti-Hebbian variant is in :func:`softhebb_numpy`.
    """
    x, w0 = _check(x, w0, eta, tau)
    try:
        import brian2 as b2
    except Exception as exc:  # pragma: no cover - brian2 is a dependency
        raise ReferenceUnavailableError(f"the SoftHebb twin needs brian2 ({exc})") from exc
    K, D = w0.shape
    saved = (b2.prefs.codegen.target, b2.prefs.core.default_float_dtype)
    b2.prefs.codegen.target = "numpy"
    b2.prefs.core.default_float_dtype = np.float64
    try:
        dt = 1 * b2.ms
        stim = b2.TimedArray(x, dt=dt)
        inputs = b2.NeuronGroup(D, "x : 1", dt=dt, name="inputs")
        inputs.run_regularly("x = stim(t, i)", when="start")
        outputs = b2.NeuronGroup(K, """
            u : 1
            Z : 1
            ex = exp(u / tau) : 1
            y = ex / Z : 1
            """, dt=dt, order=0, name="outputs")
        pool = b2.NeuronGroup(1, "Zpool : 1", dt=dt, order=5, name="pool")
        S = b2.Synapses(inputs, outputs, "w : 1\nu_post = w * x_pre : 1 (summed)", dt=dt, name="S")
        S.connect()
        S.w[:] = w0[S.j[:], S.i[:]]
        collect = b2.Synapses(outputs, pool, "Zpool_post = exp(u_pre / tau) : 1 (summed)", dt=dt,
                              name="collect")
        collect.connect()
        lateral = b2.Synapses(pool, outputs, dt=dt, name="lateral")
        lateral.connect()
        # every output has exactly one lateral synapse (from the pool), so this write is well defined;
        # Brian2 cannot know that and warns, hence the suppression of that one message
        b2.BrianLogger.suppress_hierarchy("brian2.codegen.generators.base")
        lateral.run_regularly("Z_post = Zpool_pre", when="groups", order=6)
        S.run_regularly("w += eta * y_post * (x_pre - u_post * w)", when="end")
        net = b2.Network(inputs, outputs, pool, S, collect, lateral)
        net.run(len(x) * dt, namespace={"tau": tau, "eta": eta, "stim": stim})
        w = np.zeros((K, D))
        w[np.asarray(S.j[:]), np.asarray(S.i[:])] = np.asarray(S.w[:])
        return w
    finally:
        b2.prefs.codegen.target, b2.prefs.core.default_float_dtype = saved
