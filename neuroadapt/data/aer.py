"""AER (address-event representation) binary files: neuron addresses + time stamps.

neuroadapt's AER file (``.aer``, version 1) is little-endian and has four parts::

    header        64 bytes (below)
    records       n_records x (uint32 address, uint32 or uint64 time stamp), packed
    sample table  n_samples x (uint64 first record, uint64 start tick, int32 label, int32 speaker)
    metadata      meta_bytes of UTF-8 JSON (an object: class names, SHD meta_info, ...)

Header (offsets in bytes)::

     0  8  magic            b"NAAER\\r\\n\\x1a"
     8  2  uint16 version   1
    10  2  uint16 header    header size in bytes (64); records start here
    12  1  uint8  layout    0 flat, 1 spinnaker, 2 loihi
    13  1  uint8  ts_bytes  4 or 8 (time stamp width)
    14  2  uint16 flags     0 (reserved)
    16  4  uint32 tick_ns   time-stamp unit in ns (1000 = 1 µs)
    20  4  uint32 n_channels  neuron ids are 0 .. n_channels - 1
    24  8  uint64 n_records
    32  8  uint64 n_samples
    40  4  uint32 meta_bytes
    44  4  4 x uint8 field widths in bits, most significant field first (0 = unused)
    48  4  uint32 neurons_per_core
    52  2  uint16 cores_per_chip
    54  2  uint16 first_core
    56  8  reserved, zero

The records form one time line (time stamps never decrease), playable as it is. Sample ``i``
is records ``first[i] .. first[i+1]-1`` and starts at tick ``start[i]``: its spike times are
``(stamp - start[i]) * tick``. Every field is checked on read; anything wrong raises
:class:`~neuroadapt.errors.DataError` naming the file and what is wrong. Writes are atomic
(temporary file + ``os.replace``).

Address layouts map a flat neuron id (an SHD channel) to the fields of a 32-bit address and
back (:mod:`neuroadapt.data.aer_layouts`: :class:`FlatLayout`, :class:`SpiNNakerLayout`,
:class:`LoihiLayout`; ``docs/data.md``).
"""
from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field

import numpy as np

from neuroadapt.data.aer_layouts import (  # noqa: F401  (re-exported)
    LAYOUTS,
    AddressLayout,
    FlatLayout,
    LoihiLayout,
    SpiNNakerLayout,
    _int,
    make_layout,
)
from neuroadapt._io import atomic_path
from neuroadapt.errors import DataError, InvalidInputError, NeuroadaptError

__all__ = [
    "MAGIC", "VERSION", "HEADER_SIZE", "AddressLayout", "FlatLayout", "SpiNNakerLayout", "LoihiLayout", "make_layout",
    "LAYOUTS", "AERData", "encode_aer", "decode_aer", "write_aer", "read_aer",
    "atomic_write",
]

MAGIC = b"NAAER\r\n\x1a"
VERSION = 1
HEADER_SIZE = 64
_HEADER = struct.Struct("<8sHHBBHIIQQI4BIHH8x")
_TABLE = np.dtype([("first", "<u8"), ("start", "<u8"), ("label", "<i4"), ("speaker", "<i4")])
assert _HEADER.size == HEADER_SIZE and _TABLE.itemsize == 24


def _record_dtype(ts_bytes: int) -> np.dtype:
    return np.dtype([("address", "<u4"), ("timestamp", "<u4" if ts_bytes == 4 else "<u8")])


def _header_layout(code, widths, npc, cpc, first) -> AddressLayout:
    if code == 0:
        layout = FlatLayout()
    elif code == 1:
        layout = SpiNNakerLayout(*widths, neurons_per_core=npc, cores_per_chip=cpc, first_core=first)
    elif code == 2:
        layout = LoihiLayout(*widths[:3], neurons_per_core=npc, cores_per_chip=cpc)
    else:
        raise DataError(f"unknown address layout code {code} (0 flat, 1 spinnaker, 2 loihi)")
    if tuple(_layout_header(layout)) != (list(widths), npc, cpc, first):
        raise DataError(f"{layout.name} layout: header fields {widths}, {npc}, {cpc}, {first} do not describe "
                        f"a {layout.name} layout (unused fields must be 0)")
    return layout


def _layout_header(layout: AddressLayout):
    widths = list(layout.widths) + [0] * (4 - len(layout.widths))
    p = layout.params()
    return widths, p.get("neurons_per_core", 0), p.get("cores_per_chip", 0), p.get("first_core", 0)


# ------------------------------------------------------------------------------ data
@dataclass
class AERData:
    """The content of an AER file. ``timestamps`` are absolute ticks; use :meth:`samples` for
    per-sample spike times relative to each sample's start."""

    addresses: np.ndarray           # uint32, one per record
    timestamps: np.ndarray          # uint64 ticks, non-decreasing
    neuron_ids: np.ndarray          # int64 flat ids (decoded addresses)
    layout: AddressLayout
    tick_ns: int
    n_channels: int
    first: np.ndarray               # int64 first record of each sample
    start: np.ndarray               # int64 start tick of each sample
    labels: np.ndarray              # int64
    speakers: np.ndarray            # int64
    meta: dict = field(default_factory=dict)
    timestamp_bytes: int = 4
    version: int = VERSION

    @property
    def n_samples(self) -> int:
        return len(self.first)

    def sample_slices(self):
        ends = np.append(self.first[1:], len(self.addresses)) if len(self.first) else self.first
        return [slice(int(a), int(b)) for a, b in zip(self.first, ends)]

    def samples(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """``[(ticks relative to the sample start, int64; neuron ids, int64), ...]``."""
        return [(self.timestamps[s].astype(np.int64) - int(t0), self.neuron_ids[s])
                for s, t0 in zip(self.sample_slices(), self.start)]


def _as_int_array(values, name, n, lo, hi):
    if values is None:
        return np.zeros(n, dtype=np.int64)
    arr = np.asarray(values)
    if arr.shape != (n,) or (n and (arr.dtype.kind not in "iu" or arr.min() < lo or arr.max() > hi)):
        raise InvalidInputError(f"{name} must be {n} integers in {lo}..{hi}, got shape {arr.shape}, dtype {arr.dtype}")
    return arr.astype(np.int64)


def encode_aer(ticks, neuron_ids, *, layout="spinnaker", tick_ns: int = 1000, n_channels: int | None = None,
               labels=None, speakers=None, meta: dict | None = None, gap: int = 0,
               timestamp_bytes: int | None = None) -> bytes:
    """The bytes of an AER file holding the samples ``(ticks[i], neuron_ids[i])``.

    ``ticks[i]``: sample ``i``'s integer time stamps (ticks of ``tick_ns`` ns from the sample's
    start, non-decreasing); ``neuron_ids[i]``: flat neuron ids, encoded with ``layout`` (a name
    or a layout object). Samples follow each other on one time line: sample ``i + 1`` starts
    ``gap`` ticks after the last tick of sample ``i`` (+1). A single 1-D ``ticks`` array is one
    sample. ``n_channels`` defaults to the largest id + 1. ``timestamp_bytes`` (4 or 8) defaults
    to 4 when every stamp fits in 32 bits. ``meta`` is stored as JSON.
    """
    lay = make_layout(layout)
    tick_ns = _int(tick_ns, "tick_ns", 1, 2**32 - 1)
    gap = _int(gap, "gap", 0, 2**62)
    if isinstance(ticks, np.ndarray) and ticks.dtype != object and ticks.ndim == 1:
        ticks, neuron_ids = [ticks], [neuron_ids]
    ticks, neuron_ids = list(ticks), list(neuron_ids)
    if len(ticks) != len(neuron_ids):
        raise InvalidInputError(f"{len(ticks)} time-stamp arrays but {len(neuron_ids)} neuron-id arrays")
    n = len(ticks)
    labels = _as_int_array(labels, "labels", n, -(2**31), 2**31 - 1)
    speakers = _as_int_array(speakers, "speakers", n, -(2**31), 2**31 - 1)
    ks, ids, first, start = [], [], np.zeros(n, np.int64), np.zeros(n, np.int64)
    t0, count = 0, 0
    for i, (k, u) in enumerate(zip(ticks, neuron_ids)):
        k, u = np.asarray(k), np.asarray(u)
        if k.ndim != 1 or u.shape != k.shape:
            raise InvalidInputError(f"sample {i}: time stamps and neuron ids must be 1-D arrays of equal length, "
                                    f"got shapes {k.shape} and {u.shape}")
        if len(k):
            if k.dtype.kind not in "iu" or u.dtype.kind not in "iu":
                raise InvalidInputError(f"sample {i}: time stamps and neuron ids must be integers, "
                                        f"got {k.dtype} and {u.dtype}")
            if k.min() < 0:
                raise InvalidInputError(f"sample {i}: time stamps must be non-negative, got {int(k.min())}")
            if (np.diff(k.astype(np.int64)) < 0).any():
                raise InvalidInputError(f"sample {i}: time stamps are not sorted; sort the events by time")
            if u.min() < 0:
                raise InvalidInputError(f"sample {i}: neuron ids must be non-negative, got {int(u.min())}")
        if len(k) and t0 + int(k.max()) >= 2**63:
            raise InvalidInputError(f"sample {i}: the time line passes 2**63 ticks; use a coarser tick_ns")
        first[i], start[i] = count, t0
        ks.append(k.astype(np.uint64) + np.uint64(t0))
        ids.append(u.astype(np.int64))
        count += len(k)
        t0 += (int(k.max()) + 1 if len(k) else 0) + gap
    all_ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    all_ticks = np.concatenate(ks) if ks else np.zeros(0, np.uint64)
    top = int(all_ids.max()) + 1 if len(all_ids) else 1
    n_channels = top if n_channels is None else _int(n_channels, "n_channels", 1, 2**32 - 1)
    if top > n_channels:
        raise InvalidInputError(f"neuron id {top - 1} is outside 0..{n_channels - 1} (n_channels={n_channels})")
    if n_channels > lay.capacity:
        raise InvalidInputError(f"n_channels={n_channels} does not fit the {lay} ({lay.capacity} neurons); "
                                f"give more neurons_per_core / cores_per_chip or wider fields")
    last = int(all_ticks[-1]) if len(all_ticks) else 0
    if timestamp_bytes is None:
        timestamp_bytes = 4 if last < 2**32 else 8
    if timestamp_bytes not in (4, 8) or (timestamp_bytes == 4 and last >= 2**32):
        raise InvalidInputError(f"timestamp_bytes must be 4 or 8 (4 holds stamps < 2**32), got {timestamp_bytes} "
                                f"for a last stamp of {last}")
    rec = np.empty(len(all_ids), dtype=_record_dtype(timestamp_bytes))
    rec["address"] = lay.encode(all_ids)
    rec["timestamp"] = all_ticks
    table = np.empty(n, dtype=_TABLE)
    table["first"], table["start"], table["label"], table["speaker"] = first, start, labels, speakers
    try:
        meta_bytes = json.dumps(meta or {}, ensure_ascii=False, sort_keys=True).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"AER metadata must be JSON-serialisable: {exc}") from None
    widths, npc, cpc, fc = _layout_header(lay)
    header = _HEADER.pack(MAGIC, VERSION, HEADER_SIZE, lay.code, timestamp_bytes, 0, tick_ns, n_channels,
                          len(rec), n, len(meta_bytes), *widths, npc, cpc, fc)
    return b"".join([header, rec.tobytes(), table.tobytes(), meta_bytes])


def decode_aer(data, *, where: str = "AER data") -> AERData:
    """Parse and check the bytes of an AER file (:class:`DataError` for anything malformed)."""
    buf = memoryview(data).cast("B")
    size = len(buf)
    if size < len(MAGIC) or bytes(buf[: len(MAGIC)]) != MAGIC:
        raise DataError(f"{where}: not a neuroadapt AER file (bad magic {bytes(buf[:8])!r}, "
                        f"expected {MAGIC!r})")
    if size < HEADER_SIZE:
        raise DataError(f"{where}: truncated: {size} bytes, shorter than the {HEADER_SIZE}-byte header")
    (_, version, hsize, code, ts_bytes, flags, tick_ns, n_channels, n_rec, n_samp, meta_len,
     *rest) = _HEADER.unpack_from(buf, 0)
    widths, (npc, cpc, fc) = tuple(rest[:4]), rest[4:]
    if version != VERSION:
        raise DataError(f"{where}: AER format version {version}; this neuroadapt reads version {VERSION}")
    if hsize < HEADER_SIZE:
        raise DataError(f"{where}: header size {hsize} is below {HEADER_SIZE}")
    if ts_bytes not in (4, 8):
        raise DataError(f"{where}: time-stamp width {ts_bytes} bytes; must be 4 or 8")
    if tick_ns < 1 or n_channels < 1:
        raise DataError(f"{where}: tick_ns ({tick_ns}) and n_channels ({n_channels}) must be at least 1")
    try:
        layout = _header_layout(code, widths, npc, cpc, fc)
    except NeuroadaptError as exc:
        raise DataError(f"{where}: invalid address layout in the header: {exc}") from None
    rdt = _record_dtype(ts_bytes)
    expected = hsize + n_rec * rdt.itemsize + n_samp * _TABLE.itemsize + meta_len
    if size < expected:
        raise DataError(f"{where}: truncated: the header announces {n_rec} records, {n_samp} samples and "
                        f"{meta_len} metadata bytes ({expected} bytes in all) but there are {size} bytes")
    if size > expected:
        raise DataError(f"{where}: {size - expected} unexpected bytes after the end ({expected} bytes announced)")
    rec = np.frombuffer(buf, dtype=rdt, count=n_rec, offset=hsize)
    off = hsize + n_rec * rdt.itemsize
    table = np.frombuffer(buf, dtype=_TABLE, count=n_samp, offset=off)
    off += n_samp * _TABLE.itemsize
    try:
        meta = json.loads(bytes(buf[off:off + meta_len]).decode("utf-8")) if meta_len else {}
    except (UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{where}: metadata is not valid UTF-8 JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise DataError(f"{where}: metadata must be a JSON object, got {type(meta).__name__}")
    stamps = rec["timestamp"].astype(np.uint64)
    dec = np.flatnonzero(stamps[1:] < stamps[:-1])
    if len(dec):
        i = int(dec[0])
        raise DataError(f"{where}: time stamps are not sorted: record {i + 1} ({int(stamps[i + 1])}) comes after "
                        f"record {i} ({int(stamps[i])})")
    first = table["first"].astype(np.int64)
    start = table["start"].astype(np.int64)
    if (table["first"] > np.uint64(n_rec)).any() or (table["start"] >= np.uint64(2**63)).any():
        raise DataError(f"{where}: the sample table points past the {n_rec} records")
    if n_rec and (n_samp == 0 or first[0] != 0):
        raise DataError(f"{where}: records before the first sample (the sample table must start at record 0)")
    if (np.diff(first) < 0).any() or (np.diff(start) < 0).any():
        raise DataError(f"{where}: the sample table is not in order (first records and start ticks must not decrease)")
    if n_rec:
        owner = np.repeat(np.arange(n_samp), np.diff(np.append(first, n_rec)))
        rel = stamps.astype(np.int64) - start[owner]
        after = np.append(start[1:], np.iinfo(np.int64).max)[owner]
        bad = np.flatnonzero((rel < 0) | (stamps.astype(np.int64) >= after))
        if len(bad):
            i = int(bad[0])
            raise DataError(f"{where}: record {i} (time stamp {int(stamps[i])}) lies outside its sample "
                            f"{int(owner[i])}, which starts at tick {int(start[owner[i]])}")
    ids = layout.decode(rec["address"], where=where)
    if len(ids) and ids.max() >= n_channels:
        i = int(np.argmax(ids))
        raise DataError(f"{where}: record {i} addresses neuron {int(ids[i])}, outside 0..{n_channels - 1} "
                        f"(n_channels={n_channels})")
    return AERData(addresses=rec["address"].copy(), timestamps=stamps, neuron_ids=ids, layout=layout,
                   tick_ns=int(tick_ns), n_channels=int(n_channels), first=first, start=start,
                   labels=table["label"].astype(np.int64), speakers=table["speaker"].astype(np.int64),
                   meta=meta, timestamp_bytes=int(ts_bytes), version=int(version))


def atomic_write(path, write) -> str:
    """Call ``write(f)`` on a binary temporary file beside ``path``, then move it to ``path``
    (:func:`neuroadapt._io.atomic_path`); on any failure ``path`` is untouched.
    OSErrors become :class:`DataError`. Returns ``path``."""
    path = os.fspath(path)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            write(f)
    except OSError as exc:
        raise DataError(f"cannot write {path} ({type(exc).__name__}: {exc}); check that the folder is "
                        f"writable and the path is not a folder") from None
    return path


def write_aer(path, ticks, neuron_ids, **kwargs) -> str:
    """Write :func:`encode_aer` ``(ticks, neuron_ids, **kwargs)`` to ``path`` atomically; returns the path."""
    data = encode_aer(ticks, neuron_ids, **kwargs)  # everything is checked before the file is created
    return atomic_write(path, lambda f: f.write(data))


def read_aer(path) -> AERData:
    """Read and check an AER file (:class:`DataError` if missing or malformed)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"AER file not found: {path}")
    if os.path.isdir(path):
        raise DataError(f"{path} is a folder, not an AER file")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise DataError(f"cannot read {path} ({type(exc).__name__}: {exc})") from None
    return decode_aer(data, where=path)
