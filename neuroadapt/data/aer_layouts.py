"""Address layouts of 32-bit AER addresses: flat ids, SpiNNaker routing keys, Loihi per-core addresses.

A layout has two levels: the **bit fields** of an address (:meth:`AddressLayout.pack` /
:meth:`~AddressLayout.unpack`, most significant field first) and the **placement** of a flat
neuron id (an SHD channel, a population index) on those fields (:meth:`~AddressLayout.encode`
/ :meth:`~AddressLayout.decode`, which checks that every field is in range). Used by
:mod:`neuroadapt.data.aer`; the defaults and their sources are in ``docs/data.md``.
"""
from __future__ import annotations

import abc

from dataclasses import dataclass

import numpy as np

from neuroadapt.errors import DataError, InvalidInputError

__all__ = ["AddressLayout", "FlatLayout", "SpiNNakerLayout", "LoihiLayout", "LAYOUTS", "make_layout"]


def _int(value, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise InvalidInputError(f"{name} must be an integer in {lo}..{hi}, got {value!r}")
    return int(value)


# ------------------------------------------------------------------------------ address layouts
class AddressLayout(abc.ABC):
    """Bit fields of a 32-bit address (most significant first) and the placement of flat ids.
    Subclasses: :class:`FlatLayout`, :class:`SpiNNakerLayout`, :class:`LoihiLayout`."""

    code: int
    name: str

    @property
    @abc.abstractmethod
    def fields(self) -> tuple[tuple[str, int], ...]:
        """``(name, bits)`` of each field, most significant first."""

    def _validate(self) -> None:
        total = sum(b for _, b in self.fields)
        if total > 32:
            raise InvalidInputError(f"{self.name} layout: field widths {self.widths} add up to {total} bits; "
                                    f"an address has 32")

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(b for _, b in self.fields)

    @property
    @abc.abstractmethod
    def capacity(self) -> int:
        """How many flat neuron ids the layout can address."""

    def pack(self, **values) -> np.ndarray:
        """The uint32 addresses of field values (arrays or ints, one keyword per field)."""
        names = [n for n, _ in self.fields]
        if sorted(values) != sorted(names):
            raise InvalidInputError(f"{self.name} layout: pack() takes the fields {names}, got {sorted(values)}")
        addr = np.zeros(np.broadcast(*[np.asarray(v) for v in values.values()]).shape, dtype=np.uint64)
        shift = sum(self.widths)
        for name, bits in self.fields:
            shift -= bits
            v = np.asarray(values[name])
            if v.size and (v.dtype.kind not in "iu" or v.min() < 0 or v.max() >= 2**bits):
                raise InvalidInputError(f"{self.name} address field '{name}' must be integers in "
                                        f"0..{2**bits - 1} ({bits} bits)")
            addr |= v.astype(np.uint64) << np.uint64(shift)
        return addr.astype(np.uint32)

    def unpack(self, addresses) -> dict[str, np.ndarray]:
        """The field values (int64 arrays) of uint32 addresses (bits above the fields ignored)."""
        a = np.asarray(addresses).astype(np.uint64)
        out, shift = {}, sum(self.widths)
        for name, bits in self.fields:
            shift -= bits
            out[name] = ((a >> np.uint64(shift)) & np.uint64(2**bits - 1)).astype(np.int64)
        return out

    def encode(self, neuron_ids) -> np.ndarray:
        """uint32 addresses of flat neuron ids ``0 .. capacity - 1``."""
        ids = np.asarray(neuron_ids)
        if ids.size and (ids.dtype.kind not in "iu" or ids.min() < 0 or ids.max() >= self.capacity):
            raise InvalidInputError(f"{self.name} layout addresses neuron ids 0..{self.capacity - 1} ({self}); "
                                    f"got ids up to {ids.max() if ids.size else None}")
        return self.pack(**self._place(ids.astype(np.int64)))

    def decode(self, addresses, *, where: str = "") -> np.ndarray:
        """Flat neuron ids (int64) of uint32 addresses; :class:`DataError` for an address whose
        fields lie outside the layout (unused high bits set, a core or neuron out of range)."""
        a = np.atleast_1d(np.asarray(addresses)).astype(np.uint64)
        at = f"{where}: " if where else ""
        total = sum(self.widths)
        if total < 32 and a.size:
            high = np.flatnonzero(a >> np.uint64(total))
            if len(high):
                i = int(high[0])
                raise DataError(f"{at}address #{i} (0x{int(a[i]):08x}) sets bits above the {total} bits of the "
                                f"{self.name} layout {self.widths}")
        f = self.unpack(a)
        for name, lo, hi in self._ranges():
            bad = np.flatnonzero((f[name] < lo) | (f[name] > hi))
            if len(bad):
                i = int(bad[0])
                raise DataError(f"{at}address #{i} (0x{int(a[i]):08x}): field '{name}' = {int(f[name][i])} is "
                                f"outside {lo}..{hi} of the {self}")
        return self._unplace(f)

    def _ranges(self):
        return ()

    @abc.abstractmethod
    def params(self) -> dict:
        """The layout's parameters (written to AER headers)."""

    def __str__(self) -> str:
        return f"{self.name} layout (" + ", ".join(f"{k}={v}" for k, v in self.params().items()) + ")"


@dataclass(frozen=True)
class FlatLayout(AddressLayout):
    """The address is the neuron id itself (one 32-bit field)."""

    code = 0
    name = "flat"

    @property
    def fields(self):
        return (("neuron", 32),)

    @property
    def capacity(self) -> int:
        return 2**32

    def _place(self, ids):
        return {"neuron": ids}

    def _unplace(self, f):
        return f["neuron"]

    def params(self) -> dict:
        return {}


@dataclass(frozen=True)
class SpiNNakerLayout(AddressLayout):
    """SpiNNaker routing keys ``x | y | p | n`` (chip x, chip y, processor, neuron; most significant
    first), the classic SpiNNaker-1 key of 8 + 8 + 5 + 11 bits.

    Flat neuron id ``i`` is placed ``neurons_per_core`` to a core, on application cores
    ``first_core .. first_core + cores_per_chip - 1`` of each chip (core 0 is the monitor), chips
    filled along x, then y: ``core = i // neurons_per_core``, ``n = i % neurons_per_core``,
    ``p = first_core + core % cores_per_chip``, ``chip = core // cores_per_chip``,
    ``x = chip % 2**x_bits``, ``y = chip // 2**x_bits``. Defaults: 256 neurons per core (sPyNNaker's
    usual LIF limit), 16 application cores per 18-core chip.
    """

    x_bits: int = 8
    y_bits: int = 8
    p_bits: int = 5
    n_bits: int = 11
    neurons_per_core: int = 256
    cores_per_chip: int = 16
    first_core: int = 1
    code = 1
    name = "spinnaker"

    def __post_init__(self):
        for k in ("x_bits", "y_bits", "p_bits", "n_bits"):
            _int(getattr(self, k), k, 0 if k != "n_bits" else 1, 32)
        self._validate()
        # upper bounds also keep the values inside the AER header's uint32 / uint16 fields
        _int(self.neurons_per_core, "neurons_per_core", 1, min(2**self.n_bits, 2**32 - 1))
        _int(self.first_core, "first_core", 0, min(2**self.p_bits - 1, 65535))
        _int(self.cores_per_chip, "cores_per_chip", 1, min(2**self.p_bits - self.first_core, 65535))

    @property
    def fields(self):
        return (("x", self.x_bits), ("y", self.y_bits), ("p", self.p_bits), ("n", self.n_bits))

    @property
    def capacity(self) -> int:
        return self.neurons_per_core * self.cores_per_chip * 2 ** (self.x_bits + self.y_bits)

    def _place(self, ids):
        core, n = np.divmod(ids, self.neurons_per_core)
        chip, p = np.divmod(core, self.cores_per_chip)
        y, x = np.divmod(chip, 2**self.x_bits)
        return {"x": x, "y": y, "p": p + self.first_core, "n": n}

    def _unplace(self, f):
        chip = f["y"] * 2**self.x_bits + f["x"]
        core = chip * self.cores_per_chip + (f["p"] - self.first_core)
        return core * self.neurons_per_core + f["n"]

    def _ranges(self):
        return (("p", self.first_core, self.first_core + self.cores_per_chip - 1),
                ("n", 0, self.neurons_per_core - 1))

    def params(self) -> dict:
        return {"x_bits": self.x_bits, "y_bits": self.y_bits, "p_bits": self.p_bits, "n_bits": self.n_bits,
                "neurons_per_core": self.neurons_per_core, "cores_per_chip": self.cores_per_chip,
                "first_core": self.first_core}


@dataclass(frozen=True)
class LoihiLayout(AddressLayout):
    """Loihi-style per-core addresses ``chip | core | neuron`` (compartment), most significant first.

    Flat neuron id ``i``: ``core = i // neurons_per_core``, ``neuron = i % neurons_per_core``,
    ``chip = core // cores_per_chip``, ``core %= cores_per_chip``. Defaults: 128 neuro-cores per
    chip and 1024 compartments per core (Loihi 1), 12 + 7 + 13 bits (13 neuron bits leave room for
    Loihi 2's up to 8192 neurons per core). This packing is neuroadapt's, not an Intel wire format.
    """

    chip_bits: int = 12
    core_bits: int = 7
    neuron_bits: int = 13
    neurons_per_core: int = 1024
    cores_per_chip: int = 128
    code = 2
    name = "loihi"

    def __post_init__(self):
        _int(self.chip_bits, "chip_bits", 0, 32)
        _int(self.core_bits, "core_bits", 0, 32)
        _int(self.neuron_bits, "neuron_bits", 1, 32)
        self._validate()
        _int(self.neurons_per_core, "neurons_per_core", 1, min(2**self.neuron_bits, 2**32 - 1))
        _int(self.cores_per_chip, "cores_per_chip", 1, min(2**self.core_bits, 65535))

    @property
    def fields(self):
        return (("chip", self.chip_bits), ("core", self.core_bits), ("neuron", self.neuron_bits))

    @property
    def capacity(self) -> int:
        return self.neurons_per_core * self.cores_per_chip * 2**self.chip_bits

    def _place(self, ids):
        core, neuron = np.divmod(ids, self.neurons_per_core)
        chip, core = np.divmod(core, self.cores_per_chip)
        return {"chip": chip, "core": core, "neuron": neuron}

    def _unplace(self, f):
        return (f["chip"] * self.cores_per_chip + f["core"]) * self.neurons_per_core + f["neuron"]

    def _ranges(self):
        return (("core", 0, self.cores_per_chip - 1), ("neuron", 0, self.neurons_per_core - 1))

    def params(self) -> dict:
        return {"chip_bits": self.chip_bits, "core_bits": self.core_bits, "neuron_bits": self.neuron_bits,
                "neurons_per_core": self.neurons_per_core, "cores_per_chip": self.cores_per_chip}


LAYOUTS = {"flat": FlatLayout, "spinnaker": SpiNNakerLayout, "loihi": LoihiLayout}


def make_layout(layout="spinnaker", **params) -> AddressLayout:
    """A layout by name (``flat``, ``spinnaker``, ``loihi``) with parameters, or a layout unchanged."""
    if isinstance(layout, AddressLayout):
        if params:
            raise InvalidInputError("give layout parameters with a layout name, not with a layout object")
        return layout
    if layout not in LAYOUTS:
        raise InvalidInputError(f"unknown address layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    try:
        return LAYOUTS[layout](**params)
    except TypeError as exc:
        raise InvalidInputError(f"{layout} layout: {exc}") from None
