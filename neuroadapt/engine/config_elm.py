"""Recipe keys of the ELM model types (``model.type: elm`` / ``branch_elm``) and their checks.

Pure data and standard-library checks, used by :mod:`neuroadapt.engine.config`; the model
itself is built in :mod:`neuroadapt.engine.models_elm`.
"""
from __future__ import annotations

from neuroadapt.errors import ConfigError

__all__ = ["ELM_TYPES", "ELM_MODEL_SCHEMA", "check_elm_model"]

_NONE = type(None)
_NUM = (int, float)
ELM_TYPES = ("elm", "branch_elm")
READOUTS = ("last", "sum", "mean")

ELM_MODEL_SCHEMA = {
    "type": (str, "elm", "model family", ELM_TYPES),
    "n_memory": (int, 100, "memory units d_m"),
    "version": (str, "v1", "memory update: 'v1' (lambda (1 - kappa_m)) or 'v2' (1 - kappa_lambda)", ("v1", "v2")),
    "lambda_value": (_NUM, 5.0, "lambda, the memory-update scale"),
    "mlp_layers": (int, 1, "hidden layers of the dendritic MLP"),
    "mlp_hidden": ((int, _NONE), None, "width of the MLP's hidden layers (null: 2 * n_memory)"),
    "mlp_activation": (str, "relu", "MLP non-linearity: relu, silu or tanh", ("relu", "silu", "tanh")),
    "tau_s": (_NUM, 0.005, "synaptic trace time constant in seconds (shared by all synapses)"),
    "learn_tau_s": (bool, False, "train tau_s"),
    "tau_m_min": (_NUM, 0.001, "lower bound of the memory time constants (seconds)"),
    "tau_m_max": (_NUM, 1.0, "upper bound of the memory time constants (seconds)"),
    "tau_m_init": ((list, _NONE), None, "[lo, hi]: log-spaced initial memory time constants (null: the bounds)"),
    "learn_tau_m": (bool, False, "train the memory time constants (bounded sigmoid)"),
    "w_s_init": (_NUM, 0.5, "initial synapse weight"),
    "n_branches": ((int, _NONE), None, "branch_elm: number of branches d_tree"),
    "synapses_per_branch": (int, 1, "branch_elm: synapses per branch d_brch"),
    "routing": ((str, _NONE), None, "branch_elm: 'random' (default) or 'overlap' (moving window)"),
    "routing_seed": (int, 0, "seed of the random routing"),
    "dt": ((_NUM, _NONE), None, "time step in seconds (null: the data set's bin width dataset.dt)"),
    "readout": (str, "last", "logits from the readout y_t: 'last' step, 'sum' or 'mean' over time", READOUTS),
    "input_dropout": (_NUM, 0.0, "dropout probability on the input spikes during training"),
    "n_inputs": ((int, _NONE), None, "input width (null: taken from the data set)"),
}


def check_elm_model(recipe: dict, where: str) -> None:
    """Range checks of an ELM ``model`` section; fills ``dt`` from ``dataset.dt`` when null."""
    m = recipe["model"]
    for key in ("n_memory", "mlp_layers", "synapses_per_branch"):
        if m[key] < 1:
            raise ConfigError(f"{where}: model.{key} must be >= 1, got {m[key]}")
    if m["mlp_hidden"] is not None and m["mlp_hidden"] < 1:
        raise ConfigError(f"{where}: model.mlp_hidden must be >= 1 or null, got {m['mlp_hidden']}")
    for key in ("lambda_value", "tau_s"):
        if m[key] <= 0:
            raise ConfigError(f"{where}: model.{key} must be > 0, got {m[key]}")
    if not 0 <= m["tau_m_min"] < m["tau_m_max"]:
        raise ConfigError(f"{where}: model.tau_m_min / tau_m_max out of order: need 0 <= tau_m_min < tau_m_max, "
                          f"got {m['tau_m_min']} and {m['tau_m_max']}")
    init = m["tau_m_init"]
    if init is not None:
        if len(init) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in init):
            raise ConfigError(f"{where}: model.tau_m_init must be [lo, hi] (seconds), got {init!r}")
        if not m["tau_m_min"] <= init[0] <= init[1] <= m["tau_m_max"] or init[1] <= 0:
            raise ConfigError(f"{where}: model.tau_m_init {init} must lie inside [tau_m_min, tau_m_max] = "
                              f"[{m['tau_m_min']}, {m['tau_m_max']}] with lo <= hi")
    if not 0 <= m["input_dropout"] < 1:
        raise ConfigError(f"{where}: model.input_dropout must lie in [0, 1), got {m['input_dropout']}")
    if m["n_inputs"] is not None and m["n_inputs"] < 1:
        raise ConfigError(f"{where}: model.n_inputs must be >= 1, got {m['n_inputs']}")
    if m["type"] == "elm":
        if m["routing"] is not None or m["n_branches"] is not None or m["synapses_per_branch"] != 1:
            raise ConfigError(f"{where}: model.type elm has one synapse per input; n_branches, synapses_per_branch "
                              f"and routing belong to model.type branch_elm")
    else:
        if m["routing"] is None:
            m["routing"] = "random"
        if m["routing"] not in ("random", "overlap"):
            raise ConfigError(f"{where}: model.routing: {m['routing']!r} is not one of random, overlap")
        if m["n_branches"] is None or m["n_branches"] < 1:
            raise ConfigError(f"{where}: model.type branch_elm needs model.n_branches (a positive integer), "
                              f"got {m['n_branches']!r}")
    resolve_model_dt(recipe, m, where)


def resolve_model_dt(recipe: dict, m: dict, where: str) -> None:
    """``model.dt`` null -> the data set's ``dt`` (seconds per step); refused when neither is usable."""
    if m["dt"] is None:
        ds_dt = recipe["dataset"].get("dt")
        if not isinstance(ds_dt, (int, float)) or isinstance(ds_dt, bool):
            raise ConfigError(f"{where}: model.dt is null and dataset {recipe['dataset']['name']!r} has no dt "
                              f"option; set model.dt (seconds per time step)")
        m["dt"] = float(ds_dt)
    if m["dt"] <= 0:
        raise ConfigError(f"{where}: model.dt must be > 0 seconds, got {m['dt']}")
