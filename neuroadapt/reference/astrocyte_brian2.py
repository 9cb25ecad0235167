"""Brian2 twin of the tripartite synapse and the G-ChI astrocyte (Stimberg et al. 2019).

The equations are the chapter's (``docs/astrocyte.md`` writes them out); they are given to
Brian2 as text with physical units (µM, mM, s), so Brian2 checks their dimensions.  Nothing
here imports torch: :mod:`neuroadapt.core.astrocyte` is checked against this.

Network, as in ``example_4_rsmean.py``:

* ``n_syn`` tripartite synapses, each driven by its own presynaptic spike train
  (a ``SpikeGeneratorGroup`` replaying ``spikes``: (T, n_syn) of 0/1);
  ``Y_S, Γ_S, u_S, x_S`` clock-driven, integrated exactly (``method='exact'``);
* ``n_astro`` G-ChI astrocytes integrated with RK4, each releasing gliotransmitter when ``C``
  first crosses ``C_Θ`` (``threshold='C>C_Theta', refractory='C>C_Theta'``, release in the
  reset);
* coupling by summed variables: astrocyte ``a`` sees ``Y = Σ_s syn_to_astro[a, s] Y_S[s]``;
  synapse ``s`` sees ``G_A = Σ_a astro_to_syn[s, a] G_A[a]`` (0/1 matrices).

Schedule of one step (explicit ``order`` values so the torch model can follow it)::

    groups    -1  Y (astrocyte) <- Σ Y_S                 (summed variable)
               0  astrocyte RK4 step (refractory flag re-armed first if C <= C_Θ)
               1  G_A (synapse) <- Σ G_A                 (summed variable)
               2  synapse exact step
    thresholds    input spikes; astrocyte event if C > C_Θ and armed
    synapses      on_pre: U_0 = (1-Γ_S)U_0* + αΓ_S, u += U_0(1-u), r = u x, x -= r, Y_S += ρ_c Y_T r
    resets        G_A += ρ_e G_T U_A x_A,  x_A -= U_A x_A
    end           state recorded
"""
from __future__ import annotations

import numpy as np

from neuroadapt.core.astro_params import STATE_NAMES, AstroParams
from neuroadapt.errors import InvalidInputError, ReferenceUnavailableError, ShapeError

__all__ = ["simulate_tripartite_brian2", "SYNAPSE_EQUATIONS", "ASTROCYTE_EQUATIONS", "coupling"]

SYNAPSE_EQUATIONS = """
dY_S/dt = -Omega_c * Y_S : mmolar (clock-driven)
dGamma_S/dt = O_G * G_A * (1 - Gamma_S) - Omega_G * Gamma_S : 1 (clock-driven)
du_S/dt = -Omega_f * u_S : 1 (clock-driven)
dx_S/dt = Omega_d * (1 - x_S) : 1 (clock-driven)
r_S : 1
G_A : mmolar
"""
SYNAPSE_ON_PRE = """
U_0 = (1 - Gamma_S) * U_0_star + alpha * Gamma_S
u_S += U_0 * (1 - u_S)
r_S = u_S * x_S
x_S -= r_S
Y_S += rho_c * Y_T * r_S
"""
ASTROCYTE_EQUATIONS = """
dGamma_A/dt = O_N * Y * (1 - Gamma_A) - Omega_N * (1 + zeta * C/(C + K_KC)) * Gamma_A : 1
dI/dt = J_beta + J_delta - J_3K - J_5P + J_ex : mmolar
J_beta = O_beta * Gamma_A : mmolar/second
J_delta = O_delta/(1 + I/kappa_delta) * C**2/(C**2 + K_delta**2) : mmolar/second
J_3K = O_3K * C**4/(C**4 + K_D**4) * I/(I + K_3K) : mmolar/second
J_5P = Omega_5P * I : mmolar/second
delta_I_bias = I - I_bias : mmolar
J_ex = -F_ex/2 * (1 + tanh((abs(delta_I_bias) - I_Theta)/omega_I)) * sign(delta_I_bias) : mmolar/second
dC/dt = (Omega_C * m_inf**3 * h**3 + Omega_L) * (C_T - (1 + rho_A)*C) - O_P * C**2/(C**2 + K_P**2) : mmolar
dh/dt = (h_inf - h)/tau_h : 1
m_inf = I/(I + d_1) * C/(C + d_5) : 1
h_inf = Q_2/(Q_2 + C) : 1
tau_h = 1/(O_2 * (Q_2 + C)) : second
Q_2 = d_2 * (I + d_1)/(I + d_3) : mmolar
dx_A/dt = Omega_A * (1 - x_A) : 1
dG_A/dt = -Omega_e * G_A : mmolar
Y : mmolar
I_bias : mmolar (constant)
"""
GLIO_RELEASE = """
G_A += rho_e * G_T * U_A * x_A
x_A -= U_A * x_A
"""
_CONC = {"Y_T", "K_P", "C_T", "d_1", "d_2", "d_3", "d_5", "K_KC", "kappa_delta", "K_delta", "K_D", "K_3K",
         "I_Theta", "omega_I", "C_Theta", "G_T"}
_CONC_RATE = {"O_P", "O_beta", "O_delta", "O_3K", "F_ex"}        # µM/s
_PER_CONC_RATE = {"O_G", "O_2", "O_N"}                           # 1/(µM s)
_RATE = {"Omega_c", "Omega_f", "Omega_d", "Omega_G", "Omega_C", "Omega_L", "Omega_N", "Omega_5P", "Omega_A",
         "Omega_e"}


def _namespace(b2, p: AstroParams) -> dict:
    um, s = b2.umolar, b2.second
    ns = {}
    for k, v in p.as_dict().items():
        if k in _CONC:
            ns[k] = v * um
        elif k in _CONC_RATE:
            ns[k] = v * um / s
        elif k in _PER_CONC_RATE:
            ns[k] = v / (um * s)
        elif k in _RATE:
            ns[k] = v / s
        elif not k.endswith("0"):
            ns[k] = v
    return ns


def coupling(mode: str, n_syn: int):
    """``(syn_to_astro (n_astro, n_syn), astro_to_syn (n_syn, n_astro))`` 0/1 matrices, one
    astrocyte per synapse:  ``none`` (no astrocytes), ``driven`` (synapse -> astrocyte only),
    ``open`` (astrocyte -> synapse only; the astrocyte runs on its IP3 bias), ``closed`` (both)."""
    eye = np.eye(n_syn)
    table = {"none": (np.zeros((0, n_syn)), np.zeros((n_syn, 0))), "driven": (eye, 0 * eye),
             "open": (0 * eye, eye), "closed": (eye, eye)}
    if mode not in table:
        raise InvalidInputError(f"mode {mode!r} is not one of {', '.join(table)}")
    return table[mode]


def _check(spikes, syn_to_astro, astro_to_syn, I_bias, dt):
    s = np.asarray(spikes, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] == 0:
        raise ShapeError(f"spikes must be (T, n_syn) with T >= 1, got shape {s.shape}")
    if not np.all((s == 0) | (s == 1)):
        raise InvalidInputError("spikes must hold 0/1 values (one presynaptic spike per step at most)")
    n_syn = s.shape[1]
    a_in = np.asarray(syn_to_astro, dtype=np.float64)
    a_out = np.asarray(astro_to_syn, dtype=np.float64)
    if a_in.ndim != 2 or a_in.shape[1] != n_syn:
        raise ShapeError(f"syn_to_astro must be (n_astro, {n_syn}), got {a_in.shape}")
    if a_out.shape != (n_syn, a_in.shape[0]):
        raise ShapeError(f"astro_to_syn must be ({n_syn}, {a_in.shape[0]}), got {a_out.shape}")
    for name, m in (("syn_to_astro", a_in), ("astro_to_syn", a_out)):
        if not np.all((m == 0) | (m == 1)):
            raise InvalidInputError(f"{name} must be a 0/1 connection matrix")
    bias = np.broadcast_to(np.asarray(I_bias, dtype=np.float64), (a_in.shape[0],)).copy()
    if np.any(bias < 0) or not np.all(np.isfinite(bias)):
        raise InvalidInputError(f"I_bias must be finite and >= 0 µM, got {I_bias!r}")
    if not (float(dt) > 0 and np.isfinite(dt)):
        raise InvalidInputError(f"dt must be a positive number of seconds, got {dt!r}")
    return s, a_in, a_out, bias


def simulate_tripartite_brian2(spikes, syn_to_astro, astro_to_syn, *, params: AstroParams | None = None,
                               I_bias=0.0, dt: float = 1e-3, codegen: str = "numpy") -> dict:
    """Run the network of the module docstring for ``T = len(spikes)`` steps of ``dt`` seconds.

    Returns ``{name: (T, n) float64}`` for every name in ``STATE_NAMES`` (synapse variables
    have ``n_syn`` columns, astrocyte variables ``n_astro``; concentrations in µM), the state
    after each step, plus ``glio_events`` (T, n_astro) 0/1 and ``dt``.
    """
    p = params or AstroParams()
    s, a_in, a_out, bias = _check(spikes, syn_to_astro, astro_to_syn, I_bias, dt)
    try:
        import brian2 as b2
    except Exception as exc:
        raise ReferenceUnavailableError(f"the astrocyte twin needs brian2, which cannot be imported ({exc})") from exc
    saved = (b2.prefs.codegen.target, b2.prefs.core.default_float_dtype)
    b2.prefs.codegen.target = codegen
    b2.prefs.core.default_float_dtype = np.float64
    try:
        return _run(b2, s, a_in, a_out, bias, p, float(dt))
    finally:
        b2.prefs.codegen.target, b2.prefs.core.default_float_dtype = saved


def _run(b2, s, a_in, a_out, bias, p, dt):
    T, n_syn = s.shape
    n_astro = a_in.shape[0]
    um, second = b2.umolar, b2.second
    ns = _namespace(b2, p)
    clock = b2.Clock(dt=dt * second)
    steps, idx = np.nonzero(s)
    src = b2.SpikeGeneratorGroup(n_syn, idx, steps * dt * second, clock=clock, name="pre*")
    post = b2.NeuronGroup(n_syn, "", clock=clock, name="post*")
    syn = b2.Synapses(src, post, SYNAPSE_EQUATIONS, on_pre=SYNAPSE_ON_PRE, method="exact", clock=clock,
                      order=2, namespace=ns, name="tripartite*")
    syn.connect(j="i")
    syn.x_S = p.x_S0
    objects = [src, post, syn]
    mon_syn = b2.StateMonitor(syn, ["Y_S", "Gamma_S", "u_S", "x_S", "r_S"], record=True, when="end", clock=clock)
    objects.append(mon_syn)
    astro = mon_astro = events = None
    if n_astro:
        astro = b2.NeuronGroup(n_astro, ASTROCYTE_EQUATIONS, threshold="C>C_Theta", refractory="C>C_Theta",
                               reset=GLIO_RELEASE, method="rk4", clock=clock, order=0, namespace=ns,
                               name="astro*")
        astro.h, astro.x_A, astro.C, astro.I = p.h0, p.x_A0, p.C0 * um, p.I0 * um
        astro.I_bias = bias * um
        objects.append(astro)
        ii, jj = np.nonzero(a_in.T)          # synapse index, astrocyte index
        if len(ii):
            up = b2.Synapses(syn, astro, "Y_post = Y_S_pre : mmolar (summed)", clock=clock, name="ecs_up*")
            up.connect(i=ii, j=jj)
            objects.append(up)
        ii, jj = np.nonzero(a_out.T)         # astrocyte index, synapse index
        if len(ii):
            down = b2.Synapses(astro, syn, "G_A_post = G_A_pre : mmolar (summed)", clock=clock, name="ecs_down*")
            down.connect(i=ii, j=jj)
            objects.append(down)
        mon_astro = b2.StateMonitor(astro, ["Gamma_A", "I", "C", "h", "x_A", "G_A"], record=True, when="end",
                                    clock=clock)
        events = b2.SpikeMonitor(astro)
        objects += [mon_astro, events]
    net = b2.Network(*objects)
    net.run(T * dt * second, namespace={})
    out = {"dt": dt}
    conc = {"Y_S", "I", "C", "G_A"}
    for name in STATE_NAMES:
        mon = mon_syn if name in ("Y_S", "Gamma_S", "u_S", "x_S", "r_S") else mon_astro
        if mon is None:
            out[name] = np.zeros((T, 0))
            continue
        val = getattr(mon, name)
        val = np.asarray(val / um if name in conc else val, dtype=np.float64).T
        if val.shape[0] != T:
            raise RuntimeError(f"Brian2 recorded {val.shape[0]} steps of {name}, expected {T}; a bug in the twin")
        out[name] = val
    ev = np.zeros((T, n_astro))
    if events is not None and events.num_spikes:
        k = np.rint(np.asarray(events.t / second) / dt).astype(int)
        ev[k, np.asarray(events.i)] = 1
    out["glio_events"] = ev
    return out
