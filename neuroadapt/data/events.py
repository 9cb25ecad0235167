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

Conversions (lossless where the forms allow; see ``docs/data.md``, "Event formats"):

* dense spike tensors ``(T, N)`` / ``(T, B, N)`` (0/1 or counts, time-major) <-> events:
  :func:`dense_to_events` puts ``c`` spikes at the start ``k * dt`` of bin ``k`` for a count
  ``c``; :func:`events_to_dense` / :func:`events_to_dense_batch` bin them back with the rule
  above, so tensor -> events -> tensor is exact.
* seconds <-> integer time stamps (ticks of ``tick_ns`` nanoseconds): :func:`seconds_to_ticks`
  truncates ``float64(t) * ticks_per_second`` toward zero, which for 1 µs ticks is exactly what
  tonic's SHD loader does; :func:`ticks_to_seconds` returns, per tick, a float of the requested
  dtype that truncates back to the same tick (the only such float when the dtype's spacing
  there exceeds one tick, e.g. float16 times >= 1.95 ms at 1 µs ticks, so seconds -> ticks ->
  seconds is exact there, and otherwise within one tick).
* tonic event arrays: :mod:`neuroadapt.data.tonic_events`; AER files: :mod:`neuroadapt.data.aer`;
  files of every form: :mod:`neuroadapt.data.convert`.
"""
from __future__ import annotations

import math

import numpy as np

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


# ------------------------------------------------------------------------------ conversions
_NS_PER_S = 1_000_000_000


def _check_tick(tick_ns) -> int:
    if isinstance(tick_ns, bool) or not isinstance(tick_ns, (int, np.integer)) or not 1 <= tick_ns < 2**32:
        raise InvalidInputError(
            f"tick_ns (the time-stamp unit) must be a whole number of nanoseconds in 1..2**32-1, got {tick_ns!r}; "
            f"1000 is 1 µs"
        )
    return int(tick_ns)


def seconds_to_ticks(times, tick_ns: int = 1000) -> np.ndarray:
    """Integer time stamps (int64) of ``tick_ns``-nanosecond ticks: ``trunc(float64(t) * 1e9 / tick_ns)``.

    For ``tick_ns = 1000`` this is tonic's rule (``times.astype(float64) * 1e6`` cast to int64).
    Times must be finite and non-negative (:class:`DataError` otherwise).
    """
    tick_ns = _check_tick(tick_ns)
    t = np.asarray(times)
    if t.size and t.dtype.kind not in "fiu":
        raise DataError(f"spike times must be real numbers (seconds), got dtype {t.dtype}")
    scaled = t.astype(np.float64) * (_NS_PER_S / tick_ns)
    if scaled.size:
        if not np.isfinite(scaled).all() or scaled.min() < 0:
            raise DataError("spike times must be finite and non-negative to become time stamps")
        if scaled.max() >= 2.0**63:
            raise DataError(f"a spike time ({float(t.max())} s) overflows 64-bit time stamps of {tick_ns} ns")
    return np.trunc(scaled).astype(np.int64)


def ticks_to_seconds(ticks, tick_ns: int = 1000, dtype=np.float64) -> np.ndarray:
    """Times in seconds (``dtype``) of integer time stamps, the inverse of :func:`seconds_to_ticks`.

    Each result is a float of ``dtype`` that :func:`seconds_to_ticks` maps back to the same tick
    whenever the dtype has one in that tick (float64 always in practice; float32 below ~8 s at
    1 µs); otherwise the float nearest to ``tick * tick_ns`` ns. Where the dtype's spacing exceeds
    one tick the float is the only one in the tick, so seconds -> ticks -> seconds is exact.
    Times too large for ``dtype`` become ``inf`` (the SHD writer then refuses them).
    """
    tick_ns = _check_tick(tick_ns)
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise InvalidInputError(f"dtype must be a float dtype (float16/32/64), got {dt}")
    k = np.asarray(ticks)
    if k.size and k.dtype.kind not in "iu":
        raise DataError(f"time stamps must be integers, got dtype {k.dtype}")
    shape = k.shape
    k = k.astype(np.int64).reshape(-1)
    if k.size and k.min() < 0:
        raise DataError(f"time stamps must be non-negative, got {int(k.min())}")
    scale = _NS_PER_S / tick_ns
    with np.errstate(over="ignore"):
        nearest = (k.astype(np.float64) / scale).astype(dt)
    c = nearest.copy()
    kf = k.astype(np.float64)
    for _ in range(16):  # step up to the first float that truncates to the tick (usually 0-1 steps)
        low = np.isfinite(c) & (np.trunc(c.astype(np.float64) * scale) < kf)
        if not low.any():
            break
        c[low] = np.nextafter(c[low], dt.type(np.inf))
    miss = np.isfinite(c) & (np.trunc(c.astype(np.float64) * scale) != kf)
    c[miss] = nearest[miss]  # no float of this dtype inside the tick: the nearest one
    return c.reshape(shape)


def _check_dt(dt) -> float:
    if isinstance(dt, bool) or not isinstance(dt, (int, float, np.floating, np.integer)):
        raise InvalidInputError(f"dt must be a number of seconds, got {dt!r}")
    if not math.isfinite(dt) or dt <= 0:
        raise InvalidInputError(f"dt must be a positive, finite number of seconds, got {dt!r}")
    return float(dt)


def _dense_counts(spikes, *, batch_first: bool = False) -> np.ndarray:
    """A dense spike tensor (torch or NumPy) as int64 counts, time-major; checked."""
    if hasattr(spikes, "detach"):  # a torch tensor; no torch import needed
        spikes = spikes.detach().cpu().numpy()
    x = np.asarray(spikes)
    if x.ndim not in (2, 3):
        raise ShapeError(
            f"spike tensor must be (T, N) or (T, B, N) (time-major), got shape {x.shape}; "
            f"pass batch_first=True for (B, T, N)"
        )
    if batch_first:
        if x.ndim != 3:
            raise ShapeError(f"batch_first=True needs a (B, T, N) tensor, got shape {x.shape}")
        x = np.swapaxes(x, 0, 1)
    if x.size == 0:
        return np.zeros(x.shape, dtype=np.int64)
    if x.dtype.kind == "b":
        return x.astype(np.int64)
    if x.dtype.kind not in "fiu":
        raise InvalidInputError(f"spike tensor must hold numbers (0/1 or counts), got dtype {x.dtype}")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise InvalidInputError("spike tensor holds NaN or inf; it must hold spike counts (0/1 or whole numbers)")
    if x.min() < 0:
        raise InvalidInputError(f"spike tensor holds a negative value ({x.min()}); it must hold spike counts")
    counts = x.astype(np.int64)
    if x.dtype.kind == "f" and (counts != x).any():
        bad = x[counts != x].flat[0]
        raise InvalidInputError(
            f"spike tensor holds {bad}, not a whole number; it must hold spike counts (0/1 or whole numbers), "
            f"not rates or membrane values"
        )
    return counts


def _events_of(counts: np.ndarray):
    """(bin index, unit) int64 arrays of a (T, N) count array, time then channel order."""
    k, n = np.nonzero(counts)
    c = counts[k, n]
    return np.repeat(k, c), np.repeat(n, c)


def dense_to_events(spikes, dt: float, *, batch_first: bool = False):
    """Events of a dense spike tensor: ``(times float64 s, units int64)`` for ``(T, N)``, a list
    of ``B`` such pairs for ``(T, B, N)``.

    A count ``c`` in bin ``k`` of channel ``n`` becomes ``c`` spikes at ``bin_edges(dt, T)[k]``
    (the bin's start), sorted by time then channel. :func:`events_to_dense` with the same ``dt``
    and ``n_bins = T`` gives the tensor back exactly.
    """
    dt = _check_dt(dt)
    counts = _dense_counts(spikes, batch_first=batch_first)
    edges = bin_edges(dt, counts.shape[0])
    if counts.ndim == 2:
        k, n = _events_of(counts)
        return edges[k], n
    out = []
    for b in range(counts.shape[1]):
        k, n = _events_of(counts[:, b, :])
        out.append((edges[k], n))
    return out


def _n_bins_default(n_bins, last_bin: int) -> int:
    if n_bins is None:
        return max(int(last_bin) + 1, 1)
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise InvalidInputError(f"n_bins must be a positive integer, got {n_bins!r}")
    return int(n_bins)


def events_to_dense(times, units, n_channels: int, dt: float, n_bins: int | None = None, *,
                    dtype=np.float32, validate: bool = True) -> np.ndarray:
    """Spike counts ``(n_bins, n_channels)`` of one sample in bins of ``dt`` from t = 0 (the
    binning rule of :func:`bin_spikes`); ``n_bins`` defaults to just enough for the last spike.
    Spikes past ``n_bins * dt`` are dropped."""
    return events_to_dense_batch([times], [units], n_channels, dt, n_bins, dtype=dtype, validate=validate)[:, 0, :]


def events_to_dense_batch(times_list, units_list, n_channels: int, dt: float, n_bins: int | None = None, *,
                          dtype=np.float32, validate: bool = True) -> np.ndarray:
    """Spike counts ``(n_bins, B, n_channels)``, time-major, of ``B`` samples (see :func:`events_to_dense`)."""
    n_channels = _check_channels(n_channels)
    dt = _check_dt(dt)
    if len(times_list) != len(units_list):
        raise ShapeError(f"{len(times_list)} times arrays but {len(units_list)} units arrays")
    ts, us = [], []
    for i, (t, u) in enumerate(zip(times_list, units_list)):
        if validate:
            t, u = check_events(t, u, n_channels, where=f"sample {i}", require_sorted=False)
        ts.append(np.asarray(t, dtype=np.float64))
        us.append(np.asarray(u).astype(np.int64))
    last = max((float(t.max()) for t in ts if len(t)), default=0.0)
    if n_bins is None:
        guess = int(last // dt) + 2
        n_bins = max(int(_bin_index(np.array([last]), dt, guess)[0]) + 1, 1)
    n_bins = _n_bins_default(n_bins, 0)
    batch = len(ts)
    if batch == 0 or sum(len(t) for t in ts) == 0:
        return np.zeros((n_bins, batch, n_channels), dtype=dtype)
    t = np.concatenate(ts)
    u = np.concatenate(us)
    s = np.repeat(np.arange(batch, dtype=np.int64), [len(x) for x in ts])
    b = _bin_index(t, dt, n_bins)
    keep = (b >= 0) & (b < n_bins)
    flat = (b[keep] * batch + s[keep]) * n_channels + u[keep]
    counts = np.bincount(flat, minlength=n_bins * batch * n_channels)
    return counts.reshape(n_bins, batch, n_channels).astype(dtype, copy=False)
