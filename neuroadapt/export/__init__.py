"""Export trained networks to neuromorphic formats: one registry of targets.

Each target is a module ``neuroadapt.export.<target>`` (loaded on first use, so a target's
optional dependencies cost nothing until it is asked for) that defines::

    def export_model(model, out_dir, *, dt, verify=False, inputs=None, labels=None) -> dict

* ``model``: a trained torch module in eval mode on the CPU (e.g. the engine's
  ``SpikingClassifier``; targets name the layers they cannot take with
  :class:`~neuroadapt.errors.UnsupportedOptionError`);
* ``out_dir``: an empty folder the target writes its files into (the caller builds it as
  ``<out>.partial`` and renames it when the target returns, so a failed export leaves nothing);
* ``dt``: the model's time step in seconds (the one conversion to continuous time happens here);
* ``verify``: also run the exported artefact in the independent toolchain/emulator and report the
  comparison (``spike_mismatches`` etc.);
* ``inputs`` / ``labels``: time-major input spikes ``(T, B, N)`` and labels for verification
  (from the run's test split).

Further keyword-only parameters of ``export_model`` are the target's own options (``neuroadapt
export --option KEY=VALUE``; e.g. SpiNNaker's ``subtract="fir"``). A module attribute
``NEEDS_INPUTS = True`` makes the engine pass test inputs even without ``verify`` (the events
target runs the model to record its spikes). A model class with an ``export_unsupported_reason``
attribute (e.g. ELM) is refused before any target runs.

It returns a JSON-serialisable dict of what it wrote and measured; the engine saves it as
``metrics.json`` in the export folder. :func:`targets` lists the registered names.
"""
from __future__ import annotations

import importlib

from neuroadapt.errors import UnsupportedOptionError

__all__ = ["TARGETS", "targets", "get_target"]

#: target name -> module path (implementations live in those modules)
TARGETS = {
    "nir": "neuroadapt.export.nir",
    "loihi": "neuroadapt.export.loihi",
    "spinnaker": "neuroadapt.export.spinnaker",
    "aer": "neuroadapt.export.aer_out",
}


def targets() -> list[str]:
    """Names accepted by ``neuroadapt export --to``."""
    return sorted(TARGETS)


def get_target(name: str):
    """The module implementing export target ``name`` (it defines ``export_model``)."""
    if name not in TARGETS:
        raise UnsupportedOptionError(f"export target {name!r} is not supported; choose one of {', '.join(targets())}")
    try:
        module = importlib.import_module(TARGETS[name])
    except ModuleNotFoundError as exc:
        if exc.name == TARGETS[name]:
            raise UnsupportedOptionError(f"export target {name!r} is not implemented in this version") from None
        raise
    if not hasattr(module, "export_model"):
        raise UnsupportedOptionError(f"export target {name!r} is not implemented in this version")
    return module
