"""Recipe keys of ``model.type: astro_classifier`` (AM-SU, recurrent LIF or LSTM hidden layer) and
their checks.  Pure data and standard-library checks; the model is built in
:mod:`neuroadapt.engine.models_astro`.
"""
from __future__ import annotations

from neuroadapt.engine.config_elm import resolve_model_dt
from neuroadapt.errors import ConfigError

__all__ = ["ASTRO_TYPES", "ASTRO_MODEL_SCHEMA", "check_astro_model"]

_NONE = type(None)
_NUM = (int, float)
ASTRO_TYPES = ("astro_classifier",)

ASTRO_MODEL_SCHEMA = {
    "type": (str, "astro_classifier", "model family", ASTRO_TYPES),
    "cell": (str, "amsu", "hidden layer: amsu (tripartite synapses), lif (LIF) or lstm", ("amsu", "lif", "lstm")),
    "hidden": (int, 128, "hidden units"),
    "recurrent": (bool, True, "recurrent weights in the hidden layer (amsu, lif; an LSTM always is)"),
    "beta": (_NUM, 0.9, "membrane decay per step (amsu, lif)"),
    "learn_beta": (bool, True, "train beta"),
    "threshold": (_NUM, 1.0, "firing threshold (amsu, lif)"),
    "surrogate_slope": (_NUM, 2.0, "slope of the atan surrogate gradient"),
    "readout": (str, "last", "logits from the leaky readout: 'last' step, 'mean' or 'max' over time",
                ("last", "mean", "max")),
    "readout_beta": (_NUM, 0.9, "decay of the leaky-integrator readout"),
    "n_astro": (int, 8, "amsu: astrocytes"),
    "astrocyte": (str, "reduced", "amsu: 'reduced' (trainable) or 'none' (Tsodyks-Markram only)",
                  ("reduced", "none")),
    "excitability": (bool, False, "amsu: astrocyte also lowers the threshold"),
    "u_star": (_NUM, 0.6, "amsu: resting release probability"),
    "alpha": (_NUM, 0.0, "amsu: release probability under full gliotransmission (0: depressing)"),
    "tau_f": (_NUM, 0.3, "amsu: facilitation time constant (s)"),
    "tau_d": (_NUM, 0.5, "amsu: depression recovery time constant (s)"),
    "tau_p": (_NUM, 2.0, "amsu: IP3-like integration time constant (s)"),
    "tau_c": (_NUM, 0.5, "amsu: Ca2+-like time constant (s)"),
    "tau_gamma": (_NUM, 0.5, "amsu: receptor activation time constant (s)"),
    "g_in": (_NUM, 1.0, "amsu: gain of synaptic activity onto IP3"),
    "g_c": (_NUM, 5.0, "amsu: slope of the Ca2+ response"),
    "theta_p": (_NUM, 0.5, "amsu: IP3 level of half Ca2+ response"),
    "g_gamma": (_NUM, 0.5, "amsu: largest receptor activation"),
    "g_exc": (_NUM, 0.2, "amsu: excitability gain"),
    "learn_synapse": (bool, True, "amsu: train release parameters and time constants"),
    "learn_astro": (bool, True, "amsu: train astrocyte gains and time constants"),
    "dt": ((_NUM, _NONE), None, "seconds per step (null: the data set's dt)"),
    "n_inputs": ((int, _NONE), None, "input width (null: taken from the data set)"),
}


def check_astro_model(recipe: dict, where: str) -> None:
    m = recipe["model"]
    for key in ("hidden", "n_astro"):
        if m[key] < 1:
            raise ConfigError(f"{where}: model.{key} must be >= 1, got {m[key]}")
    for key in ("tau_f", "tau_d", "tau_p", "tau_c", "tau_gamma", "threshold", "g_c"):
        if not m[key] > 0:
            raise ConfigError(f"{where}: model.{key} must be > 0, got {m[key]}")
    for key in ("beta", "readout_beta"):
        if not 0 <= m[key] <= 1:
            raise ConfigError(f"{where}: model.{key} must lie in [0, 1], got {m[key]}")
    if not 0 < m["u_star"] < 1 or not 0 <= m["alpha"] < 1 or not 0 <= m["g_gamma"] < 1:
        raise ConfigError(f"{where}: model.u_star must lie in (0, 1), alpha and g_gamma in [0, 1)")
    if m["n_inputs"] is not None and m["n_inputs"] < 1:
        raise ConfigError(f"{where}: model.n_inputs must be >= 1, got {m['n_inputs']}")
    resolve_model_dt(recipe, m, where)
