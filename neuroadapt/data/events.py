"""Spike events (times in seconds, channel ids) of one sample: validation and binning to frames.

A *sample* is two 1-D arrays of equal length: ``times`` (seconds, float, non-negative,
non-decreasing) and ``units`` (integer channel ids in ``0 .. n_channels - 1``). This is the
content of one entry of an SHD file's ``spikes/times`` / ``spikes/units``; see
:mod:`neuroadapt.data.shd` for the file side.

Binning (:func:`bin_spikes`, :func:`bin_batch`) counts spikes on a fixed window that starts at
t = 0 (not at the first spike, as tonic's ``ToFrame`` does unless ``start_time=0``). With
``n_bins = duration / dt`` bins, bin ``k`` holds the spikes with ``e[k] <= t < e[k + 1]`` where
``e[k]`` is the float64 nearest to ``k * dt`` (:func:`bin_edges`): a spike at exactly 0.014 s
is in bin 1 of 14 ms bins, one at 1.4 s is past a 1.4 s window. Spikes at ``t >= duration``
fall past the window and are dropped (silently, by design: SHD utterances are padded/cut to a
fixed length). The defaults (``dt = 14 ms``, ``duration = 1.4 s`` -> 100 bins) are those of
common SHD loaders.

Conversions (dense tensors <-> events, seconds <-> integer ticks) are in
:mod:`neuroadapt.data.event_conversions` and re-exported here (``from neuroadapt.data.events
import dense_to_events`` keeps working); tonic event arrays: :mod:`neuroadapt.data.tonic_events`;
AER files: :mod:`neuroadapt.data.aer`; files of every form: :mod:`neuroadapt.data.convert`.
"""
from __future__ import annotations

import math

import numpy as np

# the conversions live in event_conversions.py (split for length) and stay importable from here; that
# module imports this one only inside its functions, so either module can be imported first
from neuroadapt.data.event_conversions import (  # noqa: F401  (re-exported)
    dense_to_events,
    events_to_dense,
    events_to_dense_batch,
    seconds_to_ticks,
    ticks_to_seconds,
)
from neuroadapt.errors import DataError, InvalidInputError, ShapeError

__all__ = [
    "SHD_N_CHANNELS",
    "DEFAULT_DT",
    "DEFAULT_DURATION",
    "check_events",
    "n_bins_for",
    "bin_edges",
    "bin_spikes",
    "bin_batch",
    "seconds_to_ticks",
    "ticks_to_seconds",
    "dense_to_events",
    "events_to_dense",
    "events_to_dense_batch",
]

SHD_N_CHANNELS = 700
DEFAULT_DT = 0.014
DEFAULT_DURATION = 1.4


def _where(where: str) -> str:
    return f"{where}: " if where else ""


def check_events(
    times,
    units,
    n_channels: int = SHD_N_CHANNELS,
    *,
    where: str = "",
    require_sorted: bool = True,
    error: type[Exception] = DataError,
    shape_error: type[Exception] = ShapeError,
) -> tuple[np.ndarray, np.ndarray]:
    """Check one sample's events and return them as NumPy arrays (dtypes unchanged).

    Raises ``error`` (:class:`DataError` by default) for a wrong dtype (times not real numbers,
    units not integers), NaN / inf / negative or (with ``require_sorted``) decreasing times,
    and unit ids outside ``0 .. n_channels - 1``; ``shape_error`` for arrays that are not 1-D
    or differ in length. ``where`` (e.g. ``"file.h5, sample 3"``) prefixes every message.
    An empty sample (no spikes: a silent utterance) is valid.
    """
    at = _where(where)
    t = np.asarray(times)
    u = np.asarray(units)
    if t.ndim != 1 or u.ndim != 1:
        raise shape_error(
            f"{at}times and units must be 1-D arrays, got shapes {t.shape} and {u.shape}"
        )
    if len(t) != len(u):
        raise shape_error(
            f"{at}times has {len(t)} spikes but units has {len(u)}; "
            f"each spike needs one time and one unit id"
        )
    if len(t) == 0:  # a silent sample; np.asarray([]) is float64, accept any dtype here
        return t, u
    if t.dtype.kind not in "fiu":
        raise error(f"{at}spike times must be real numbers (seconds), got dtype {t.dtype}")
    if u.dtype.kind not in "iu":
        raise error(
            f"{at}unit ids must be integers (channel index 0..{n_channels - 1}), got dtype {u.dtype}; "
            f"cast them with .astype(np.uint16) if they are whole numbers"
        )
    if t.dtype.kind == "f" and not np.isfinite(t).all():
        bad = int(np.flatnonzero(~np.isfinite(t))[0])
        raise error(f"{at}spike time #{bad} is {t[bad]}; times must be finite seconds")
    tmin = t.min()
    if tmin < 0:
        bad = int(np.flatnonzero(t < 0)[0])
        raise error(f"{at}spike time #{bad} is negative ({float(t[bad])!r} s); times start at t = 0")
    if require_sorted and len(t) > 1:
        dec = np.flatnonzero(t[1:] < t[:-1])
        if len(dec):
            i = int(dec[0])
            raise error(
                f"{at}spike times are not sorted: #{i + 1} ({float(t[i + 1])!r} s) comes after "
                f"#{i} ({float(t[i])!r} s); sort each sample by time (np.argsort(times, kind='stable')) "
                f"or read with require_sorted=False"
            )
    umin, umax = u.min(), u.max()
    if umin < 0 or umax >= n_channels:
        bad_val = umin if umin < 0 else umax
        bad = int(np.flatnonzero(u == bad_val)[0])
        raise error(
            f"{at}unit id #{bad} is {int(bad_val)}, outside 0..{n_channels - 1} "
            f"(n_channels={n_channels}); pass the right n_channels or fix the ids"
        )
    return t, u


def n_bins_for(dt: float, duration: float) -> int:
    """Number of bins of width ``dt`` in ``duration`` seconds (which must be a whole multiple)."""
    for name, value in (("dt", dt), ("duration", duration)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
            raise InvalidInputError(f"{name} must be a number of seconds, got {value!r}")
        if not math.isfinite(value) or value <= 0:
            raise InvalidInputError(f"{name} must be a positive, finite number of seconds, got {value!r}")
    ratio = float(duration) / float(dt)
    n = round(ratio)
    if n < 1 or abs(ratio - n) > 1e-6 * max(1.0, ratio):
        raise InvalidInputError(
            f"duration={duration!r} s is not a whole number of bins of dt={dt!r} s "
            f"(ratio {ratio:.6g}); choose dt that divides duration (e.g. 0.014 for 1.4 s -> 100 bins)"
        )
    return int(n)


def bin_edges(dt: float, n_bins: int) -> np.ndarray:
    """The ``n_bins + 1`` bin edges ``k * dt`` (seconds, float64), each the double nearest to the
    exact product when ``dt`` is a whole number of nanoseconds (so 100 * 0.014 is exactly the
    double 1.4, not 1.4000000000000001); ``k * dt`` in float64 otherwise."""
    dt = float(dt)
    dt_ns = round(dt * 1e9)
    if dt_ns >= 1 and abs(dt * 1e9 - dt_ns) <= 1e-6 * dt_ns and n_bins * dt_ns < 2**53:
        return (np.arange(n_bins + 1, dtype=np.int64) * dt_ns) / 1e9
    return np.arange(n_bins + 1, dtype=np.float64) * dt


def _bin_index(times: np.ndarray, dt: float, n_bins: int) -> np.ndarray:
    """Bin of each time (-1 before 0, ``n_bins`` and above past the window)."""
    edges = bin_edges(dt, n_bins)
    return np.searchsorted(edges, times.astype(np.float64, copy=False), side="right") - 1


def _check_channels(n_channels) -> int:
    if isinstance(n_channels, bool) or not isinstance(n_channels, (int, np.integer)) or n_channels < 1:
        raise InvalidInputError(f"n_channels must be a positive integer, got {n_channels!r}")
    return int(n_channels)


def bin_spikes(
    times,
    units,
    n_channels: int = SHD_N_CHANNELS,
    dt: float = DEFAULT_DT,
    duration: float = DEFAULT_DURATION,
    *,
    dtype=np.float32,
    validate: bool = True,
) -> np.ndarray:
    """Spike counts of one sample on ``duration / dt`` bins from t = 0: array ``(T, n_channels)``.

    Spikes at ``t >= duration`` are dropped. The order of the spikes does not matter. With
    ``validate`` (default) the events are checked first (:func:`check_events`, unsorted times
    allowed); ``validate=False`` skips that for data already checked (e.g. read by
    :class:`~neuroadapt.data.shd.SHDFile`).
    """
    n_channels = _check_channels(n_channels)
    n_bins = n_bins_for(dt, duration)
    if validate:
        times, units = check_events(times, units, n_channels, require_sorted=False)
    t = np.asarray(times)
    u = np.asarray(units)
    b = _bin_index(t, dt, n_bins)
    keep = (b >= 0) & (b < n_bins)
    flat = b[keep] * n_channels + u[keep].astype(np.int64, copy=False)
    counts = np.bincount(flat, minlength=n_bins * n_channels)
    return counts.reshape(n_bins, n_channels).astype(dtype, copy=False)


def bin_batch(
    times_list,
    units_list,
    n_channels: int = SHD_N_CHANNELS,
    dt: float = DEFAULT_DT,
    duration: float = DEFAULT_DURATION,
    *,
    dtype=np.float32,
    validate: bool = True,
) -> np.ndarray:
    """Spike counts of a batch, time-major: array ``(T, B, n_channels)`` (one bincount for all)."""
    n_channels = _check_channels(n_channels)
    n_bins = n_bins_for(dt, duration)
    if len(times_list) != len(units_list):
        raise ShapeError(
            f"bin_batch: {len(times_list)} times arrays but {len(units_list)} units arrays"
        )
    batch = len(times_list)
    ts, us, bs = [], [], []
    for i, (t, u) in enumerate(zip(times_list, units_list)):
        if validate:
            t, u = check_events(t, u, n_channels, where=f"batch sample {i}", require_sorted=False)
        t, u = np.asarray(t), np.asarray(u)
        ts.append(t.astype(np.float64, copy=False))
        us.append(u.astype(np.int64, copy=False))
        bs.append(np.full(len(t), i, dtype=np.int64))
    if batch == 0 or sum(len(t) for t in ts) == 0:
        return np.zeros((n_bins, batch, n_channels), dtype=dtype)
    t = np.concatenate(ts)
    u = np.concatenate(us)
    s = np.concatenate(bs)
    b = _bin_index(t, dt, n_bins)
    keep = (b >= 0) & (b < n_bins)
    flat = (b[keep] * batch + s[keep]) * n_channels + u[keep]
    counts = np.bincount(flat, minlength=n_bins * batch * n_channels)
    return counts.reshape(n_bins, batch, n_channels).astype(dtype, copy=False)
