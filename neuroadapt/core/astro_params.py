"""Parameters of the tripartite synapse and the G-ChI astrocyte (Stimberg et al. 2019, Brian 2
neuron-glia examples), their validation and the step-size check.

Units: concentrations in µM, times in seconds, rates in 1/s (``O_*`` with a concentration in
their unit are µM/s or 1/(µM s), as in the Brian 2 scripts). Pure data and standard library:
:mod:`neuroadapt.reference` reads its parameters from here, nothing else.

Defaults are ``example_4_rsmean.py`` / ``example_4_synrel.py`` (figure 4 of the chapter);
``PRESETS["stimberg_ex2"]`` holds the values of ``example_2_gchi_astrocyte.py`` (figure 2).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields

from neuroadapt.errors import InvalidInputError

__all__ = ["AstroParams", "PRESETS", "check_dt", "max_rate", "RK4_LIMIT", "STATE_NAMES"]

#: |λ dt| below which classical RK4 is stable on the negative real axis (2.785...)
RK4_LIMIT = 2.78

#: state variables, in the order the scans return them
STATE_NAMES = ("Y_S", "Gamma_S", "u_S", "x_S", "r_S", "Gamma_A", "I", "C", "h", "x_A", "G_A")

# name -> kind: "rate" / "conc" must be > 0; "nonneg" >= 0; "prob" in [0, 1]
_KIND = {
    "rho_c": "pos", "Y_T": "conc", "Omega_c": "rate", "U_0_star": "prob", "Omega_f": "rate", "Omega_d": "rate",
    "O_G": "nonneg", "Omega_G": "rate", "alpha": "prob",
    "O_P": "rate", "K_P": "conc", "C_T": "conc", "rho_A": "nonneg", "Omega_C": "nonneg", "Omega_L": "nonneg",
    "d_1": "conc", "d_2": "conc", "O_2": "rate", "d_3": "conc", "d_5": "conc",
    "O_beta": "nonneg", "O_N": "nonneg", "Omega_N": "rate", "K_KC": "conc", "zeta": "nonneg",
    "O_delta": "nonneg", "kappa_delta": "conc", "K_delta": "conc", "Omega_5P": "nonneg", "K_D": "conc",
    "K_3K": "conc", "O_3K": "nonneg", "F_ex": "nonneg", "I_Theta": "nonneg", "omega_I": "conc",
    "C_Theta": "conc", "Omega_A": "rate", "U_A": "prob", "G_T": "nonneg", "rho_e": "nonneg", "Omega_e": "rate",
    "h0": "prob", "x_A0": "prob", "x_S0": "prob", "C0": "nonneg", "I0": "nonneg",
}


@dataclass(frozen=True)
class AstroParams:
    """Every constant of the tripartite synapse + G-ChI astrocyte (chapter notation, µM / s)."""

    # --- synapse (Tsodyks-Markram + presynaptic gliotransmitter receptors)
    rho_c: float = 0.005          # vesicle-to-extracellular volume ratio
    Y_T: float = 500_000.0        # total vesicular neurotransmitter (µM = 500 mM)
    Omega_c: float = 40.0         # neurotransmitter clearance (1/s)
    U_0_star: float = 0.6         # resting release probability
    Omega_f: float = 3.33         # facilitation rate (1/s)
    Omega_d: float = 2.0          # depression (recovery) rate (1/s)
    O_G: float = 1.5              # receptor activation (1/(µM s))
    Omega_G: float = 0.5 / 60.0   # receptor deactivation (1/s)
    alpha: float = 0.0            # release probability of fully activated receptors (0: depressing)
    # --- astrocyte Ca2+ (CICR)
    O_P: float = 0.9              # SERCA max uptake (µM/s)
    K_P: float = 0.05             # SERCA affinity (µM)
    C_T: float = 2.0              # total free Ca2+ (µM)
    rho_A: float = 0.18           # ER-to-cytoplasm volume ratio
    Omega_C: float = 6.0          # IP3R max release (1/s)
    Omega_L: float = 0.1          # ER leak (1/s)
    d_1: float = 0.13
    d_2: float = 1.05
    O_2: float = 0.2              # 1/(µM s)
    d_3: float = 0.9434
    d_5: float = 0.08
    # --- IP3 production / degradation
    O_beta: float = 3.2           # PLCβ max production (µM/s)
    O_N: float = 0.3              # agonist binding (1/(µM s))
    Omega_N: float = 0.5          # receptor inactivation (1/s)
    K_KC: float = 0.5
    zeta: float = 10.0
    O_delta: float = 0.6          # PLCδ (µM/s)
    kappa_delta: float = 1.5
    K_delta: float = 0.1
    Omega_5P: float = 0.05        # 1/s
    K_D: float = 0.7
    K_3K: float = 1.0
    O_3K: float = 4.5             # µM/s
    F_ex: float = 2.0             # exogenous IP3 flow towards I_bias (µM/s)
    I_Theta: float = 0.3
    omega_I: float = 0.05
    # --- gliotransmitter release
    C_Theta: float = 0.5          # Ca2+ threshold of exocytosis (µM)
    Omega_A: float = 0.6          # recycling (1/s)
    U_A: float = 0.6              # release probability
    G_T: float = 200_000.0        # total vesicular gliotransmitter (µM = 200 mM)
    rho_e: float = 6.5e-4
    Omega_e: float = 60.0         # clearance (1/s)
    # --- initial state (the scripts set h = 0.9, x_A = x_S = 1, the rest 0)
    h0: float = 0.9
    x_A0: float = 1.0
    x_S0: float = 1.0
    C0: float = 0.0
    I0: float = 0.0

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise InvalidInputError(f"AstroParams.{f.name} must be a finite number, got {v!r}")
            kind = _KIND[f.name]
            if kind in ("rate", "conc", "pos") and v <= 0:
                what = {"rate": "a rate (1/s or µM/s) and must be > 0 (its time constant 1/rate would be "
                                "negative or infinite)",
                        "conc": "a concentration / affinity (µM) and must be > 0", "pos": "must be > 0"}[kind]
                raise InvalidInputError(f"AstroParams.{f.name} = {v!r} is not physical: {f.name} is {what}")
            if kind == "nonneg" and v < 0:
                raise InvalidInputError(f"AstroParams.{f.name} = {v!r} is not physical: it must be >= 0 "
                                        f"(a negative concentration, rate or ratio)")
            if kind == "prob" and not 0 <= v <= 1:
                raise InvalidInputError(f"AstroParams.{f.name} = {v!r} must lie in [0, 1] (a probability / "
                                        f"fraction)")
        if self.C0 * (1 + self.rho_A) > self.C_T:
            raise InvalidInputError(f"AstroParams.C0 = {self.C0} µM exceeds C_T/(1 + rho_A) = "
                                    f"{self.C_T / (1 + self.rho_A):.3f} µM: the ER would hold negative Ca2+")

    def replace(self, **changes) -> "AstroParams":
        unknown = [k for k in changes if k not in _KIND]
        if unknown:
            raise InvalidInputError(f"unknown AstroParams field(s) {unknown}; known: {', '.join(_KIND)}")
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


PRESETS = {
    "stimberg_ex4": AstroParams(),
    "stimberg_ex2": AstroParams(rho_c=0.001, K_P=0.1, O_beta=5.0, O_delta=0.2, K_delta=0.3, Omega_5P=0.1,
                                K_D=0.5, F_ex=0.09),
}


def max_rate(p: AstroParams, y_max: float | None = None) -> float:
    """An upper bound (1/s) of the largest decay rate |λ| of the astrocyte ODE (the part RK4
    integrates), with the extracellular neurotransmitter seen by the astrocyte at most ``y_max``
    µM (default: one full release, ``rho_c Y_T``).  Each term bounds one Jacobian diagonal
    entry; their maximum, times a margin of 2 for the off-diagonal coupling, is returned."""
    y = p.rho_c * p.Y_T if y_max is None else float(y_max)
    gamma_a = p.O_N * y + p.Omega_N * (1 + p.zeta)
    ip3 = p.O_3K / p.K_3K + p.Omega_5P + p.O_delta / p.kappa_delta + p.F_ex / (2 * p.omega_I)
    ca = (p.Omega_C + p.Omega_L) * (1 + p.rho_A) + 0.65 * p.O_P / p.K_P + p.Omega_C * p.C_T / p.d_5
    h = p.O_2 * (p.d_2 * max(1.0, p.d_1 / p.d_3) + p.C_T)
    return 2.0 * max(gamma_a, ip3, ca, h, p.Omega_e, p.Omega_A)


def check_dt(dt: float, p: AstroParams, y_max: float | None = None) -> float:
    """``dt`` (seconds) as a float, or :class:`InvalidInputError` when it is not positive or
    too large for RK4 to be stable on these parameters (``dt * max_rate(p) > RK4_LIMIT``)."""
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not math.isfinite(dt) or dt <= 0:
        raise InvalidInputError(f"dt must be a positive number of seconds, got {dt!r}")
    lam = max_rate(p, y_max)
    if dt * lam > RK4_LIMIT:
        raise InvalidInputError(
            f"dt = {dt} s is too large for a stable RK4 step of the astrocyte: its fastest rate is up to "
            f"{lam:.0f}/s (bound, see max_rate), so dt must be <= {RK4_LIMIT / lam:.2e} s; use a smaller dt")
    return float(dt)
