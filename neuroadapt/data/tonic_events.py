"""tonic event arrays of 1-D (audio) sensors: SHD samples and dense tensors to and from them.

:data:`TONIC_DTYPE` is the dtype ``tonic.datasets.SHD`` / ``SSC`` yield (``t`` int64 µs,
``x`` channel, ``p`` = 1). :func:`to_tonic` builds exactly what tonic builds from an SHD file
(``t = trunc(float64(times) * 1e6)``); :func:`from_tonic` picks float times that map back to the
same µs (:func:`neuroadapt.data.events.ticks_to_seconds`). :func:`dense_to_tonic` /
:func:`tonic_to_dense` work in integer µs, so a tensor survives the round trip exactly.
"""
from __future__ import annotations

import numpy as np

from neuroadapt.data.event_conversions import (
    _check_dt,
    _dense_counts,
    _events_of,
    _n_bins_default,
    seconds_to_ticks,
    ticks_to_seconds,
)
from neuroadapt.data.events import SHD_N_CHANNELS, _check_channels, _where, check_events
from neuroadapt.errors import DataError, InvalidInputError

__all__ = ["TONIC_DTYPE", "to_tonic", "from_tonic", "dense_to_tonic", "tonic_to_dense"]

TONIC_DTYPE = np.dtype([("t", np.int64), ("x", np.int64), ("p", np.int64)])
"""tonic's SHD/SSC event dtype: ``np.dtype([("t", int), ("x", int), ("p", int)])`` of
``tonic.datasets.hsd.HSD`` (int64 on Linux): ``t`` integer µs, ``x`` channel, ``p`` = 1."""


def to_tonic(times, units, *, n_channels: int = SHD_N_CHANNELS, validate: bool = True) -> np.ndarray:
    """A tonic event array (:data:`TONIC_DTYPE`) of one sample, exactly as ``tonic.datasets.SHD``
    builds it from the file: ``t = trunc(float64(times) * 1e6)`` µs, ``x = units``, ``p = 1``."""
    if validate:
        times, units = check_events(times, units, n_channels)
    t = np.asarray(times)
    ev = np.empty(len(t), dtype=TONIC_DTYPE)
    ev["t"] = seconds_to_ticks(t, 1000)
    ev["x"] = np.asarray(units)
    ev["p"] = 1
    return ev


def _check_tonic(events, n_channels: int | None, where: str = "") -> np.ndarray:
    at = _where(where)
    ev = np.asarray(events)
    names = ev.dtype.names or ()
    if ev.ndim != 1 or "t" not in names or "x" not in names:
        raise DataError(
            f"{at}not a tonic event array: need a 1-D structured array with fields 't' (µs) and 'x' "
            f"(channel), got dtype {ev.dtype} and shape {ev.shape}"
        )
    for name in names:
        if ev.dtype[name].kind not in "iub":
            raise DataError(f"{at}tonic field '{name}' must be integers, got {ev.dtype[name]}")
    if len(ev) and "y" in names and (ev["y"] != ev["y"][0]).any():
        raise DataError(f"{at}events have several 'y' values; only 1-D sensors (audio, SHD: sensor_size (N, 1, 1)) "
                        f"are supported")
    if len(ev) and "p" in names and (ev["p"] != ev["p"][0]).any():
        raise DataError(f"{at}events have several polarities ('p'); SHD-style spikes carry one polarity, so they "
                        f"cannot be converted without loss")
    if len(ev):
        t = ev["t"]
        if t.min() < 0:
            raise DataError(f"{at}event time #{int(np.argmin(t))} is negative ({int(t.min())} µs)")
        dec = np.flatnonzero(t[1:] < t[:-1])
        if len(dec):
            i = int(dec[0])
            raise DataError(f"{at}event times are not sorted: #{i + 1} ({int(t[i + 1])} µs) comes after #{i} "
                            f"({int(t[i])} µs); sort with np.sort(events, order='t', kind='stable')")
        x = ev["x"]
        if x.min() < 0 or (n_channels is not None and x.max() >= n_channels):
            bad = int(x.min()) if x.min() < 0 else int(x.max())
            raise DataError(f"{at}channel 'x' = {bad} is outside 0..{(n_channels or 1) - 1} (n_channels={n_channels})")
    return ev


def from_tonic(events, *, dtype=np.float64, n_channels: int | None = SHD_N_CHANNELS):
    """``(times s, units int64)`` of a tonic event array (fields ``t`` µs, ``x``; a constant
    ``p`` and ``y`` are allowed). Times are chosen by :func:`ticks_to_seconds`, so
    :func:`to_tonic` gives the same array back (exactly for float64; float32 below ~8 s)."""
    ev = _check_tonic(events, n_channels)
    return ticks_to_seconds(ev["t"], 1000, dtype), ev["x"].astype(np.int64)


def _dt_us(dt) -> int:
    dt = _check_dt(dt)
    us = round(dt * 1e6)
    if us < 1 or abs(dt * 1e6 - us) > 1e-6 * us:
        raise InvalidInputError(f"dt={dt!r} s is not a whole number of µs; tonic time stamps are integer µs")
    return int(us)


def dense_to_tonic(spikes, dt: float, *, batch_first: bool = False):
    """Tonic event arrays of a dense spike tensor (``dt`` a whole number of µs): one array for
    ``(T, N)``, a list of ``B`` for ``(T, B, N)``; spikes at the bin starts ``k * dt``."""
    dt_us = _dt_us(dt)
    counts = _dense_counts(spikes, batch_first=batch_first)

    def one(c):
        k, n = _events_of(c)
        ev = np.empty(len(k), dtype=TONIC_DTYPE)
        ev["t"], ev["x"], ev["p"] = k * dt_us, n, 1
        return ev

    if counts.ndim == 2:
        return one(counts)
    return [one(counts[:, b, :]) for b in range(counts.shape[1])]


def tonic_to_dense(events, n_channels: int, dt: float, n_bins: int | None = None, *,
                   dtype=np.float32) -> np.ndarray:
    """Spike counts ``(n_bins, n_channels)`` of a tonic event array in bins of ``dt`` (whole µs)
    from t = 0, in integer arithmetic (bin ``t // dt_us``, as ``tonic.transforms.ToFrame`` with
    ``start_time=0``); ``n_bins`` defaults to just enough for the last event."""
    n_channels = _check_channels(n_channels)
    dt_us = _dt_us(dt)
    ev = _check_tonic(events, n_channels)
    b = ev["t"].astype(np.int64) // dt_us
    n_bins = _n_bins_default(n_bins, b.max() if len(b) else 0)
    keep = b < n_bins
    flat = b[keep] * n_channels + ev["x"][keep].astype(np.int64)
    return np.bincount(flat, minlength=n_bins * n_channels).reshape(n_bins, n_channels).astype(dtype, copy=False)
