"""The event files, one reader and one writer per format, and :class:`EventSet`, the form they share.

Split from :mod:`neuroadapt.data.convert`, which picks the format (:func:`~neuroadapt.data.convert.detect_format`,
:func:`~neuroadapt.data.convert.format_for_output`) and is the public entry point
(:func:`~neuroadapt.data.convert.read_events`, :func:`~neuroadapt.data.convert.write_events`,
:func:`~neuroadapt.data.convert.convert_file`; ``EventSet`` is re-exported there). The formats, the
time quantisation rule and the file layouts are described in that module and in ``docs/data.md``
("Event formats").

``READERS[fmt](path) -> EventSet``; ``WRITERS[fmt](path, es, **options) -> dict`` (what was chosen).
Writers write atomically (:func:`neuroadapt.data.aer.atomic_write`).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace

import numpy as np

from neuroadapt.data.aer import atomic_write
from neuroadapt.data.event_conversions import (
    _check_dt,
    _dense_counts,
    _events_of,
    _n_bins_default,
    seconds_to_ticks,
    ticks_to_seconds,
)
from neuroadapt.data.events import SHD_N_CHANNELS, _bin_index, bin_edges, n_bins_for
from neuroadapt.data.tonic_events import TONIC_DTYPE, _check_tonic
from neuroadapt.errors import DataError, InvalidInputError

__all__ = ["EventSet", "READERS", "WRITERS"]


@dataclass
class EventSet:
    """Samples of spike events: the common form every file converts through.

    Per sample ``i``: ``units[i]`` (int64 channel ids) and either ``times[i]`` (seconds, the
    source's float dtype) or ``ticks[i]`` (int64 time stamps of ``tick_ns`` ns). ``labels`` /
    ``speakers`` one int per sample; ``keys`` class names; ``meta_info`` SHD's per-speaker
    arrays; ``times_dtype`` the float dtype of the source's times (SHD); ``dt`` the bin width of
    a dense source (seconds); ``fmt`` the source format; ``details`` what the file says about
    itself (dtypes, AER header, ...).
    """

    units: list
    labels: np.ndarray
    n_channels: int = SHD_N_CHANNELS
    times: list | None = None
    ticks: list | None = None
    tick_ns: int | None = None
    speakers: np.ndarray | None = None
    keys: list | None = None
    meta_info: dict = field(default_factory=dict)
    times_dtype: np.dtype | None = None
    dt: float | None = None
    fmt: str = ""
    details: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.units)

    @property
    def n_spikes(self) -> int:
        return int(sum(len(u) for u in self.units))

    def times_as(self, dtype=np.float64) -> list:
        """Spike times in seconds as ``dtype`` (from ticks: :func:`ticks_to_seconds`)."""
        if self.ticks is not None:
            return [ticks_to_seconds(k, self.tick_ns, dtype) for k in self.ticks]
        return [np.asarray(t).astype(dtype) for t in self.times]

    def ticks_as(self, tick_ns: int) -> list:
        """Integer time stamps (int64) of ``tick_ns`` ns: integer arithmetic between tick units
        that divide each other, :func:`seconds_to_ticks` otherwise."""
        if self.ticks is not None:
            if tick_ns == self.tick_ns:
                return [np.asarray(k, dtype=np.int64) for k in self.ticks]
            if self.tick_ns % tick_ns == 0:
                return [np.asarray(k, dtype=np.int64) * (self.tick_ns // tick_ns) for k in self.ticks]
            if tick_ns % self.tick_ns == 0:
                return [np.asarray(k, dtype=np.int64) // (tick_ns // self.tick_ns) for k in self.ticks]
        return [seconds_to_ticks(t, tick_ns) for t in self.times_as(np.float64)]

    def select(self, index: int) -> "EventSet":
        """The one-sample set of sample ``index``."""
        n = len(self)
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not -n <= index < n:
            raise InvalidInputError(f"sample index {index!r} is out of range for {n} samples")
        i = int(index) % n

        def pick(col):
            return None if col is None else [col[i]]

        return replace(self, units=[self.units[i]], labels=self.labels[i:i + 1], times=pick(self.times),
                       ticks=pick(self.ticks),
                       speakers=None if self.speakers is None else self.speakers[i:i + 1])


def _jsonable(meta_info: dict) -> dict:
    return {k: np.asarray(v).tolist() for k, v in (meta_info or {}).items()}


# -- readers
def _read_shd(path) -> EventSet:
    import h5py

    from neuroadapt.data.shd import SHDFile

    with SHDFile(path) as shd:
        times, units = [], []
        for s in range(0, len(shd), 1024):
            for t, u, _ in shd.read_many(range(s, min(s + 1024, len(shd)))):
                times.append(t)
                units.append(u.astype(np.int64))
        es = EventSet(units=units, times=times, labels=shd.labels.copy(), n_channels=shd.n_channels,
                      speakers=None if shd.speakers is None else shd.speakers.copy(), keys=list(shd.classes),
                      meta_info=dict(shd.meta_info), times_dtype=np.dtype(shd.times_dtype), fmt="shd")
        units_dtype = shd.units_dtype
    with h5py.File(path, "r") as f:
        dtypes = {"spikes/times": str(es.times_dtype), "spikes/units": str(units_dtype),
                  "labels": str(f["labels"].dtype)}
        if "extra/speaker" in f:
            dtypes["extra/speaker"] = str(f["extra/speaker"].dtype)
        es.details["dtypes"] = dtypes
    return es


def _read_aer(path) -> EventSet:
    from neuroadapt.data.aer import read_aer

    d = read_aer(path)
    ticks, ids = zip(*d.samples()) if d.n_samples else ((), ())
    meta = d.meta
    keys = meta.get("keys")
    if keys is not None and not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
        raise DataError(f"{path}: metadata 'keys' must be a list of class names")
    mi = meta.get("meta_info") or {}
    if not isinstance(mi, dict):
        raise DataError(f"{path}: metadata 'meta_info' must be an object of per-speaker lists")
    try:
        tdt = np.dtype(meta["times_dtype"]) if meta.get("times_dtype") else None
        dt = float(meta["dt"]) if meta.get("dt") is not None else None
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: bad 'times_dtype' / 'dt' in the metadata ({exc})") from None
    es = EventSet(units=list(ids), ticks=list(ticks), tick_ns=d.tick_ns, labels=d.labels, speakers=d.speakers,
                  n_channels=d.n_channels, keys=keys, meta_info={k: np.asarray(v) for k, v in mi.items()},
                  times_dtype=tdt if tdt is not None and tdt.kind == "f" else None, dt=dt, fmt="aer")
    es.details["dtypes"] = {"address": "uint32", "timestamp": f"uint{8 * d.timestamp_bytes}"}
    es.details["aer"] = {
        "version": d.version, "address_layout": d.layout.name, "layout_params": d.layout.params(),
        "tick_ns": d.tick_ns, "timestamp_bytes": d.timestamp_bytes, "records": int(len(d.addresses)),
        "time_span_s": float(d.timestamps[-1]) * d.tick_ns * 1e-9 if len(d.timestamps) else 0.0,
    }
    return es


def _load_npy(path, what):
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot be read as {what} ({type(exc).__name__}: {exc}); "
                        f"files holding Python objects (pickles) are refused") from None


def _read_tonic_npy(path) -> EventSet:
    ev = _load_npy(path, "a .npy tonic event array")
    if not isinstance(ev, np.ndarray):
        raise DataError(f"{path}: not a .npy file of one tonic event array")
    ev = _check_tonic(ev, None, where=os.fspath(path))
    n_channels = max(SHD_N_CHANNELS, int(ev["x"].max()) + 1 if len(ev) else 0)
    es = EventSet(units=[ev["x"].astype(np.int64)], ticks=[ev["t"].astype(np.int64)], tick_ns=1000,
                  labels=np.zeros(1, np.int64), n_channels=n_channels, fmt="tonic-npy")
    es.details = {"dtypes": {name: str(ev.dtype[name]) for name in ev.dtype.names}}
    return es


def _read_dense_npz(path) -> EventSet:
    z = _load_npy(path, "a dense-npz spike file")
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: not an .npz archive")
    with z:
        if "spikes" not in z.files or "dt" not in z.files:
            raise DataError(f"{path}: a dense-npz file needs arrays 'spikes' (T, B, N) and 'dt'; it has {z.files}")
        try:
            spikes, dt = z["spikes"], z["dt"]
            extra = {k: z[k] for k in ("labels", "speakers", "keys", "meta_info_json") if k in z.files}
        except (ValueError, OSError, EOFError) as exc:
            raise DataError(f"{path}: corrupted array ({type(exc).__name__}: {exc})") from None
    if dt.shape != () or dt.dtype.kind not in "fiu":
        raise DataError(f"{path}: 'dt' must be one number of seconds, got {dt.dtype} {dt.shape}")
    try:
        dt = _check_dt(dt.item())
        counts = _dense_counts(spikes)
    except (InvalidInputError, ValueError) as exc:
        raise DataError(f"{path}: {exc}") from None
    if counts.ndim == 2:
        counts = counts[:, None, :]
    n_bins, batch, n_channels = counts.shape
    dt_ns = round(dt * 1e9)
    exact_ns = dt_ns >= 1 and abs(dt * 1e9 - dt_ns) <= 1e-6 * dt_ns
    edges = bin_edges(dt, n_bins)
    units, times, ticks = [], [], []
    for b in range(batch):
        k, n = _events_of(counts[:, b, :])
        units.append(n)
        (ticks if exact_ns else times).append(k * dt_ns if exact_ns else edges[k])
    labels = extra.get("labels", np.zeros(batch, np.int64))
    speakers = extra.get("speakers")
    for name, arr in (("labels", labels), ("speakers", speakers)):
        if arr is not None and (arr.shape != (batch,) or (batch and arr.dtype.kind not in "iu")):
            raise DataError(f"{path}: '{name}' must hold {batch} integers (one per sample), got {arr.dtype} {arr.shape}")
    keys = [str(k) for k in extra["keys"].tolist()] if "keys" in extra else None
    meta_info = {}
    if "meta_info_json" in extra:
        try:
            meta_info = {k: np.asarray(v) for k, v in json.loads(str(extra["meta_info_json"])).items()}
        except (ValueError, AttributeError) as exc:
            raise DataError(f"{path}: 'meta_info_json' is not a JSON object ({exc})") from None
    es = EventSet(units=units, times=None if exact_ns else times, ticks=ticks if exact_ns else None,
                  tick_ns=1 if exact_ns else None, labels=labels.astype(np.int64),
                  speakers=None if speakers is None else speakers.astype(np.int64), keys=keys,
                  meta_info=meta_info, n_channels=max(n_channels, 1), dt=dt, fmt="dense-npz")
    es.details = {"dtypes": {"spikes": str(spikes.dtype)}, "dense_shape": [int(s) for s in spikes.shape]}
    return es


READERS = {"shd": _read_shd, "aer": _read_aer, "tonic-npy": _read_tonic_npy, "dense-npz": _read_dense_npz}


# -- writers
def _write_shd(path, es: EventSet, *, times_dtype=None, **_):
    from neuroadapt.data.shd import write_shd

    tdt = np.dtype(times_dtype or es.times_dtype or np.float32)
    times = es.times_as(tdt)
    for i, t in enumerate(times):
        if len(t) and not np.isfinite(t).all():
            raise DataError(f"sample {i}: a spike time ({float(es.times_as(np.float64)[i].max())} s) overflows "
                            f"{tdt} (max {float(np.finfo(tdt).max)}); write the times as float32 (--times-dtype)")
    write_shd(path, times, es.units, es.labels, es.speakers, es.keys, es.meta_info or None,
              es.n_channels, times_dtype=tdt)
    return {"times_dtype": str(tdt)}


def _write_aer(path, es: EventSet, *, layout="spinnaker", layout_params=None, tick_ns=None, **_):
    from neuroadapt.data.aer import encode_aer, make_layout

    lay = make_layout(layout, **(layout_params or {}))
    tick_ns = int(tick_ns or (es.tick_ns if es.fmt == "aer" else 1000))
    meta = {"keys": es.keys, "meta_info": _jsonable(es.meta_info), "source_format": es.fmt}
    if es.times_dtype is not None:
        meta["times_dtype"] = str(es.times_dtype)
    if es.dt is not None:
        meta["dt"] = es.dt
    data = encode_aer(es.ticks_as(tick_ns), es.units, layout=lay, tick_ns=tick_ns, n_channels=es.n_channels,
                      labels=es.labels, speakers=es.speakers, meta=meta)
    atomic_write(path, lambda f: f.write(data))
    return {"address_layout": str(lay), "tick_ns": tick_ns}


def _write_tonic_npy(path, es: EventSet, **_):
    if len(es) != 1:
        raise InvalidInputError(f"a tonic .npy file holds one sample and the input has {len(es)}; "
                                f"pick one with --sample I (Python: EventSet.select(i))")
    k, u = es.ticks_as(1000)[0], es.units[0]
    ev = np.empty(len(k), dtype=TONIC_DTYPE)
    ev["t"], ev["x"], ev["p"] = k, u, 1
    _check_tonic(ev, es.n_channels)
    atomic_write(path, lambda f: np.save(f, ev, allow_pickle=False))
    return {}


_MAX_DENSE = 2**30  # elements of a dense-npz tensor (1 GiB as uint8)


def _bins(es: EventSet, dt: float) -> list:
    """Bin index (int64) of every spike of every sample in bins of ``dt`` from t = 0: integer
    ``tick // (dt / tick)`` when ``dt`` is a whole number of the source's ticks (exact, tonic's
    rule), else :func:`~neuroadapt.data.events.bin_spikes`'s rule on the times in seconds."""
    dt_ns = round(dt * 1e9)
    if es.ticks is not None and dt_ns >= 1 and abs(dt * 1e9 - dt_ns) <= 1e-6 * dt_ns and dt_ns % es.tick_ns == 0:
        per = dt_ns // es.tick_ns
        return [np.asarray(k, np.int64) // per for k in es.ticks]
    times = es.times_as(np.float64)
    guess = int(max((float(t.max()) for t in times if len(t)), default=0.0) // dt) + 2
    return [_bin_index(t, dt, guess) for t in times]


def _write_dense_npz(path, es: EventSet, *, dt=None, duration=None, **_):
    dt = _check_dt(dt if dt is not None else (es.dt if es.dt is not None else 0.001))
    n_bins = None if duration is None else n_bins_for(dt, duration)
    bins = _bins(es, dt)
    n_bins = _n_bins_default(n_bins, max((int(b.max()) for b in bins if len(b)), default=0))
    shape = (n_bins, len(es), es.n_channels)
    if int(np.prod(shape)) > _MAX_DENSE:
        raise InvalidInputError(f"the dense tensor would have shape {shape} ({int(np.prod(shape)):,} elements, over "
                                f"{_MAX_DENSE:,}); choose a larger --dt, a shorter --duration or one --sample")
    counts = np.zeros(shape, dtype=np.uint16)
    kept = 0
    for i, (b, u) in enumerate(zip(bins, es.units)):
        keep = b < n_bins
        c = np.bincount(b[keep] * es.n_channels + np.asarray(u, np.int64)[keep], minlength=n_bins * es.n_channels)
        if len(c) and c.max() > np.iinfo(np.uint16).max:
            raise DataError(f"sample {i}: more than 65535 spikes of one channel in one bin of {dt} s")
        counts[:, i, :] = c.reshape(n_bins, es.n_channels)
        kept += int(keep.sum())
    if counts.size and counts.max() <= np.iinfo(np.uint8).max:
        counts = counts.astype(np.uint8)
    arrays = {"spikes": counts, "dt": np.float64(dt), "labels": np.asarray(es.labels, np.int64)}
    if es.speakers is not None:
        arrays["speakers"] = np.asarray(es.speakers, np.int64)
    if es.keys is not None:
        arrays["keys"] = np.array([str(k) for k in es.keys], dtype=str)
    if es.meta_info:
        arrays["meta_info_json"] = np.array(json.dumps(_jsonable(es.meta_info)))
    atomic_write(path, lambda f: np.savez_compressed(f, **arrays))
    return {"dt": dt, "n_bins": n_bins, "dropped_spikes": es.n_spikes - kept}


WRITERS = {"shd": _write_shd, "aer": _write_aer, "tonic-npy": _write_tonic_npy, "dense-npz": _write_dense_npz}
