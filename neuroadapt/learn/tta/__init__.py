"""Fully test-time adaptation: Source, BN, Tent, EATA and NHL behind one interface.

``method = make_method("nhl", model, **options)``; ``logits = method(x)`` adapts on the
unlabelled batch ``x`` and predicts it; ``method.reset()`` restores the source model.
The method changes ``model`` in place: give each method its own copy (``copy.deepcopy``).
"""
from __future__ import annotations

from neuroadapt.errors import UnsupportedOptionError
from neuroadapt.learn.tta.base import BN, Source, TTAMethod, entropy
from neuroadapt.learn.tta.baselines import EATA, Tent
from neuroadapt.learn.tta.hebbian import softhebb_conv_delta, softhebb_delta, soft_wta
from neuroadapt.learn.tta.nhl import NHL

__all__ = ["TTAMethod", "Source", "BN", "Tent", "EATA", "NHL", "METHODS", "make_method", "entropy",
           "softhebb_delta", "softhebb_conv_delta", "soft_wta"]

METHODS = {"source": Source, "bn": BN, "tent": Tent, "eata": EATA, "nhl": NHL}


def make_method(name: str, model, **options) -> TTAMethod:
    """The method ``name`` (one of ``METHODS``) wrapped around ``model`` with ``options``."""
    key = str(name).lower()
    if key not in METHODS:
        raise UnsupportedOptionError(f"unknown test-time adaptation method {name!r}; choose from {', '.join(METHODS)}")
    cls = METHODS[key]
    try:
        return cls(model, **options)
    except TypeError as exc:
        raise UnsupportedOptionError(f"{key}: bad option(s) {sorted(options)}: {exc}") from None
