"""Routing keys of the exported populations (SpiNNaker multicast packets carry ``key = base | atom``).

Placement reuses :class:`neuroadapt.data.aer_layouts.SpiNNakerLayout` (``x | y | p | n``, 8+8+5+11
bits): each population starts on a fresh core, ``neurons_per_core`` to a core, so a core's base key
with the mask ``~(2**n_bits - 1)`` routes all its neurons' spikes.
"""
from __future__ import annotations

import numpy as np

from neuroadapt.data.aer_layouts import SpiNNakerLayout
from neuroadapt.errors import InvalidInputError

__all__ = ["routing_table", "spike_keys", "decode_keys"]


def routing_table(populations, layout: SpiNNakerLayout | None = None) -> dict:
    """``{"layout": params, "mask": int, "populations": [{label, size, first_id, cores: [{x, y, p,
    base_key, n_atoms}]}]}`` for ``(label, size)`` pairs, in order."""
    layout = layout or SpiNNakerLayout()
    npc = layout.neurons_per_core
    mask = (0xFFFFFFFF ^ (2**layout.n_bits - 1)) & 0xFFFFFFFF
    out, first = [], 0
    for label, size in populations:
        if first + size > layout.capacity:
            raise InvalidInputError(f"population {label}: {first + size} neurons exceed the {layout} capacity")
        cores = []
        for c0 in range(first, first + size, npc):
            f = layout.unpack(layout.encode(np.array([c0])))
            cores.append({"x": int(f["x"][0]), "y": int(f["y"][0]), "p": int(f["p"][0]),
                          "base_key": int(layout.encode(np.array([c0]))[0]), "n_atoms": min(npc, first + size - c0)})
        out.append({"label": label, "size": int(size), "first_id": first, "cores": cores})
        first += -(-size // npc) * npc  # next population starts on a fresh core
    return {"layout": layout.params(), "mask": mask, "populations": out}


def _entry(table: dict, label: str) -> dict:
    for p in table["populations"]:
        if p["label"] == label:
            return p
    raise InvalidInputError(f"no population {label!r} in the routing table")


def spike_keys(table: dict, label: str, neurons) -> np.ndarray:
    """uint32 keys of spikes from ``neurons`` (indices within population ``label``)."""
    p = _entry(table, label)
    idx = np.asarray(neurons, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= p["size"]):
        raise InvalidInputError(f"population {label} has neurons 0..{p['size'] - 1}, got {idx.max()}")
    return SpiNNakerLayout(**table["layout"]).encode(idx + p["first_id"])


def decode_keys(table: dict, keys) -> list:
    """``(label, neuron)`` of each key (the inverse of :func:`spike_keys`)."""
    ids = SpiNNakerLayout(**table["layout"]).decode(np.asarray(keys, dtype=np.uint32))
    out = []
    for i in ids:
        for p in table["populations"]:
            if p["first_id"] <= i < p["first_id"] + p["size"]:
                out.append((p["label"], int(i - p["first_id"])))
                break
        else:
            raise InvalidInputError(f"key for flat id {int(i)} belongs to no exported population")
    return out
