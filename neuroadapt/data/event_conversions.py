"""Conversions of one sample's spike events: dense spike tensors <-> events, seconds <-> integer ticks.

Lossless where the forms allow (see ``docs/data.md``, "Event formats"); split from
:mod:`neuroadapt.data.events` (which re-exports the public names), whose validation and binning
rules they use.

* dense spike tensors ``(T, N)`` / ``(T, B, N)`` (0/1 or counts, time-major) <-> events:
  :func:`dense_to_events` puts ``c`` spikes at the start ``k * dt`` of bin ``k`` for a count
  ``c``; :func:`events_to_dense` / :func:`events_to_dense_batch` bin them back with the rule of
  :func:`~neuroadapt.data.events.bin_spikes`, so tensor -> events -> tensor is exact.
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

__all__ = ["seconds_to_ticks", "ticks_to_seconds", "dense_to_events", "events_to_dense", "events_to_dense_batch"]

# ------------------------------------------------------------------------------ seconds <-> ticks
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


# ------------------------------------------------------------------------------ dense <-> events
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
    from neuroadapt.data.events import bin_edges

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
    binning rule of :func:`~neuroadapt.data.events.bin_spikes`); ``n_bins`` defaults to just enough for the last spike.
    Spikes past ``n_bins * dt`` are dropped."""
    return events_to_dense_batch([times], [units], n_channels, dt, n_bins, dtype=dtype, validate=validate)[:, 0, :]


def events_to_dense_batch(times_list, units_list, n_channels: int, dt: float, n_bins: int | None = None, *,
                          dtype=np.float32, validate: bool = True) -> np.ndarray:
    """Spike counts ``(n_bins, B, n_channels)``, time-major, of ``B`` samples (see :func:`events_to_dense`)."""
    from neuroadapt.data.events import _bin_index, _check_channels, check_events

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
