"""Recipes: find, load and validate the YAML files that describe a training run.

A recipe has four top-level keys (``docs/training.md`` lists every one with its default)::

    name: quickstart_digits      # optional; default: the file's stem
    task: classification
    dataset: {name: digits, ...} # name from neuroadapt.data's registry + that data set's OPTIONS
    model: {...}                 # MODEL_SCHEMA
    training: {...}              # TRAINING_SCHEMA

:func:`load_recipe` returns the *resolved* recipe: every default filled in, every value checked.
Anything wrong (missing file, invalid YAML, unknown key, wrong type) raises :class:`ConfigError`
naming the file, the key and what is allowed. Only the standard library and PyYAML are imported.
"""
from __future__ import annotations

import copy
import difflib
import math
import os
from pathlib import Path

from neuroadapt.engine.config_astro import ASTRO_MODEL_SCHEMA, ASTRO_TYPES, check_astro_model
from neuroadapt.engine.config_elm import ELM_MODEL_SCHEMA, ELM_TYPES, check_elm_model
from neuroadapt.errors import ConfigError

__all__ = ["load_recipe", "resolve_recipe", "find_recipe", "models_dir", "MODEL_SCHEMA", "TRAINING_SCHEMA"]

_NONE = type(None)
_NUM = (int, float)

#: key -> (accepted types, default, help). A tuple of allowed values may follow as 4th item.
TOP_SCHEMA = {
    "name": ((str, _NONE), None, "run / model name (default: the recipe file's stem)"),
    "task": (str, "classification", "what the run does", ("classification",)),
    "description": (str, "", "free text"),
}

MODEL_SCHEMA = {
    "type": (str, "spiking_classifier", "model family (elm / branch_elm: see ELM_MODEL_SCHEMA)",
             ("spiking_classifier",) + ELM_TYPES + ASTRO_TYPES),
    "hidden": (list, [128], "sizes of the hidden LIF layers"),
    "neuron": (str, "leaky", "'leaky' (LIF) or 'synaptic' (2nd-order LIF with synaptic current)"),
    "recurrent": (bool, False, "all-to-all recurrent weights in every hidden layer"),
    "beta": (_NUM, 0.9, "membrane decay per step"),
    "alpha": (_NUM, 0.8, "synaptic-current decay per step (neuron: synaptic)"),
    "threshold": (_NUM, 1.0, "firing threshold"),
    "reset": (str, "subtract", "reset after a spike: 'subtract', 'zero' or 'none'"),
    "reset_delay": (bool, True, "snnTorch's reset_delay: false resets in the step the neuron fires (exact on NIR, Loihi, SpiNNaker)"),
    "learn_beta": (bool, False, "train beta"),
    "learn_alpha": (bool, False, "train alpha"),
    "learn_threshold": (bool, False, "train the threshold"),
    "surrogate": ((str, _NONE), None, "surrogate gradient: fast_sigmoid, atan, sigmoid (null: layer default)"),
    "surrogate_slope": (_NUM, 25.0, "slope of the surrogate gradient"),
    "bias": (bool, True, "bias in the linear layers"),
    "readout": (str, "mean", "logits from the readout membrane: 'mean' or 'max' over time"),
    "readout_beta": (_NUM, 0.9, "decay of the leaky-integrator readout"),
    "dropout": (_NUM, 0.0, "training only: drop each hidden spike with this probability (inverted dropout)"),
    "init_scale": (_NUM, 1.0, "multiply the hidden layers' initial feed-forward weights and biases (uniform +-1/sqrt(fan_in))"),
    "recurrent_scale": (_NUM, 1.0, "multiply the hidden layers' initial recurrent weights and biases"),
    "n_inputs": ((int, _NONE), None, "input width (null: taken from the data set)"),
}

TRAINING_SCHEMA = {
    "epochs": (int, 10, "passes over the training set"),
    "batch_size": (int, 64, "global batch size (split across DDP ranks)"),
    "eval_batch_size": (int, 256, "batch size for evaluation"),
    "eval_every": (int, 1, "score the test split every N epochs (and always after the last)"),
    "optimizer": (str, "adam", "'adam', 'adamw' or 'sgd'"),
    "lr": (_NUM, 1e-3, "learning rate"),
    "weight_decay": (_NUM, 0.0, "weight decay"),
    "momentum": (_NUM, 0.9, "momentum (sgd only)"),
    "scheduler": (str, "none", "'none' or 'cosine' (per epoch, down to 0 at the last epoch)"),
    "label_smoothing": (_NUM, 0.0, "label smoothing of the cross-entropy loss (0: off)"),
    "grad_clip": ((_NUM, _NONE), None, "clip the gradient norm to this value (null: off)"),
    "checkpoint_every": (int, 0, "also checkpoint every N optimizer steps (0: only at epoch ends)"),
    "seed": (int, 0, "seed of every RNG (the CLI's --seed overrides it)"),
    "device": (str, "cpu", "'cpu', 'cuda', 'cuda:N' or 'auto'"),
    "threads": ((int, _NONE), None, "torch.set_num_threads (null: leave torch's default)"),
    "deterministic": (bool, True, "torch.use_deterministic_algorithms (warn only)"),
    "plots": (bool, True, "write plots/*.png at the end of the run"),
    "progress": (bool, True, "tqdm progress bar (only shown on a terminal)"),
}

DATASET_COMMON = {
    "name": (str, None, "data set name (neuroadapt.data registry)"),
    "root": ((str, _NONE), None, "local data path (the CLI's --data-root overrides it)"),
}

SECTIONS = {"dataset": None, "model": MODEL_SCHEMA, "training": TRAINING_SCHEMA}


def models_dir() -> Path:
    """Where named recipes live: ``$NEUROADAPT_MODELS`` or ``models/`` next to the package."""
    from neuroadapt._paths import project_folder

    return project_folder("models")


def find_recipe(name_or_path: str | os.PathLike, kind: str | None = None) -> Path:
    """A recipe path: an existing file as given, else ``models_dir()/<name>.yaml`` -- or, for the
    recipes of another command (``kind``: ``continual``, ``adapt``), ``models_dir()/<kind>/<name>.yaml``."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    folder = models_dir() / kind if kind else models_dir()
    if path.suffix == "" and path.parent == Path("."):
        candidate = folder / f"{path.name}.yaml"
        if candidate.is_file():
            return candidate
    if path.exists():
        raise ConfigError(f"recipe {path} is not a file")
    known = sorted(p.stem for p in folder.glob("*.yaml"))
    raise ConfigError(
        f"recipe file not found: {path} (give a path to a .yaml recipe, or the name of one in {folder}: "
        f"{', '.join(known) or 'none'})"
    )


def _typename(types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    if int in types and float in types:
        types = tuple(t for t in types if t is not int)
    names = {int: "an integer", float: "a number", bool: "true/false", str: "a string",
             list: "a list", dict: "a mapping", _NONE: "null"}
    return " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in types))


def _coerce(value, types, where: str):
    """Check ``value`` against ``types``; numbers written as strings ('1e-3') are accepted."""
    types = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool):
        if bool in types:
            return value
    elif isinstance(value, types):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return value
    elif float in types and isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            if not math.isfinite(number):
                raise ConfigError(f"{where}: expected a finite number, got {value!r}")
            return number
    elif float in types and isinstance(value, int):
        return float(value)
    raise ConfigError(f"{where}: expected {_typename(types)}, got {value!r} ({type(value).__name__})")


def _unknown(key: str, allowed, where: str, section: str) -> ConfigError:
    near = difflib.get_close_matches(key, list(allowed), n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    scope = f"in '{section}'" if section else "at the top level"
    return ConfigError(f"{where}: unknown key {key!r} {scope}{hint}; allowed: {', '.join(allowed)}")


def _resolve_section(raw, schema: dict, where: str, section: str) -> dict:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: '{section}' must be a mapping of keys to values, got {type(raw).__name__}")
    out = {}
    for key, val in raw.items():
        if key not in schema:
            raise _unknown(str(key), schema, where, section)
        spec = schema[key]
        label = f"{where}: {section + '.' if section else ''}{key}"
        val = _coerce(val, spec[0], label)
        if len(spec) > 3 and val not in spec[3]:
            raise ConfigError(f"{label}: {val!r} is not one of {', '.join(map(str, spec[3]))}")
        out[key] = val
    return {key: out[key] if key in out else copy.deepcopy(spec[1]) for key, spec in schema.items()}


def _model_schema(raw) -> dict:
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind in ASTRO_TYPES:
        return ASTRO_MODEL_SCHEMA
    return ELM_MODEL_SCHEMA if kind in ELM_TYPES else MODEL_SCHEMA


def _check_ranges(recipe: dict, where: str) -> None:
    model, train = recipe["model"], recipe["training"]
    if model["type"] in ELM_TYPES:
        check_elm_model(recipe, where)
    elif model["type"] in ASTRO_TYPES:
        check_astro_model(recipe, where)
    else:
        _check_spiking_model(model, where)
    _check_training(train, where)


def _check_spiking_model(model: dict, where: str) -> None:
    hidden = model["hidden"]
    if not hidden or not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden):
        raise ConfigError(f"{where}: model.hidden must be a non-empty list of positive integers, got {hidden!r}")
    if model["readout"] not in ("mean", "max"):
        raise ConfigError(f"{where}: model.readout: {model['readout']!r} is not one of mean, max")
    if model["n_inputs"] is not None and model["n_inputs"] < 1:
        raise ConfigError(f"{where}: model.n_inputs must be >= 1, got {model['n_inputs']}")


def _check_training(train: dict, where: str) -> None:
    for key in ("epochs", "batch_size", "eval_batch_size", "eval_every"):
        if train[key] < 1:
            raise ConfigError(f"{where}: training.{key} must be >= 1, got {train[key]}")
    for key in ("checkpoint_every", "seed"):
        if train[key] < 0:
            raise ConfigError(f"{where}: training.{key} must be >= 0, got {train[key]}")
    if train["seed"] >= 2**63:
        raise ConfigError(f"{where}: training.seed must be below 2**63, got {train['seed']}")
    if train["lr"] <= 0:
        raise ConfigError(f"{where}: training.lr must be > 0, got {train['lr']}")
    if train["optimizer"] not in ("adam", "adamw", "sgd"):
        raise ConfigError(f"{where}: training.optimizer: {train['optimizer']!r} is not one of adam, adamw, sgd")
    if train["scheduler"] not in ("none", "cosine"):
        raise ConfigError(f"{where}: training.scheduler: {train['scheduler']!r} is not one of none, cosine")
    if train["threads"] is not None and train["threads"] < 1:
        raise ConfigError(f"{where}: training.threads must be >= 1 or null, got {train['threads']}")


def resolve_recipe(raw, where: str = "recipe", default_name: str | None = None) -> dict:
    """Validate a recipe mapping and fill in every default (see the module docstring)."""
    from neuroadapt.data import get_dataset_class

    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a recipe must be a YAML mapping (key: value lines), got {type(raw).__name__}")
    allowed = list(TOP_SCHEMA) + list(SECTIONS)
    for key in raw:
        if key not in allowed:
            raise _unknown(str(key), allowed, where, "")
    top = _resolve_section({k: v for k, v in raw.items() if k in TOP_SCHEMA}, TOP_SCHEMA, where, "")
    ds_raw = raw.get("dataset")
    if not isinstance(ds_raw, dict) or "name" not in ds_raw:
        raise ConfigError(f"{where}: missing 'dataset.name' (a recipe needs dataset: {{name: ...}})")
    if not isinstance(ds_raw["name"], str):
        raise ConfigError(f"{where}: dataset.name must be a string, got {ds_raw['name']!r}")
    try:
        ds_cls = get_dataset_class(ds_raw["name"])
    except ConfigError as exc:
        raise ConfigError(f"{where}: dataset.name: {exc}") from None
    ds_schema = {**DATASET_COMMON, **ds_cls.OPTIONS}
    recipe = {
        "name": top["name"] or default_name or "run",
        "task": top["task"],
        "description": top["description"],
        "dataset": _resolve_section(ds_raw, ds_schema, where, "dataset"),
        "model": _resolve_section(raw.get("model"), _model_schema(raw.get("model")), where, "model"),
        "training": _resolve_section(raw.get("training"), TRAINING_SCHEMA, where, "training"),
    }
    _check_ranges(recipe, where)
    return recipe


def load_yaml(path: str | os.PathLike, what: str = "recipe"):
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what} file {path}: {exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{what} {path}: invalid YAML{at}: {problem}") from None


def load_recipe(name_or_path: str | os.PathLike, overrides: dict | None = None) -> dict:
    """Find, parse and resolve a recipe. ``overrides`` maps dotted keys ('training.epochs') to values
    and is applied before validation, so an override is checked like any recipe value."""
    path = find_recipe(name_or_path)
    raw = load_yaml(path)
    if raw is None:
        raise ConfigError(f"recipe {path} is empty")
    if isinstance(raw, dict):
        raw = copy.deepcopy(raw)
        for dotted, value in (overrides or {}).items():
            if value is None:
                continue
            section, _, key = dotted.partition(".")
            if not isinstance(raw.get(section), dict):
                raw[section] = {} if raw.get(section) is None else raw[section]
            if isinstance(raw[section], dict):
                raw[section][key] = value
    return resolve_recipe(raw, where=str(path), default_name=path.stem)


def dump_recipe(recipe: dict) -> str:
    import yaml

    return yaml.safe_dump(recipe, sort_keys=False, default_flow_style=None)
