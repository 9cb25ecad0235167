"""Writing SHD-format HDF5 files (the layout and dtypes are described in :mod:`neuroadapt.data.shd`).

:func:`write_shd` validates everything first, then writes through
:func:`neuroadapt._io.atomic_path`: a failed write leaves nothing behind.
"""

from __future__ import annotations

import os

import h5py
import numpy as np

from neuroadapt._io import atomic_path
from neuroadapt.data.events import SHD_N_CHANNELS, check_events
from neuroadapt.errors import DataError, InvalidInputError, ShapeError

TIMES_DTYPE = np.dtype(np.float16)
UNITS_DTYPE = np.dtype(np.uint16)
LABELS_DTYPE = np.dtype(np.uint16)
SPEAKER_DTYPE = np.dtype(np.uint16)


def _as_index_array(values, name: str, n: int | None, *, error=DataError) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ShapeError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if n is not None and len(arr) != n:
        raise ShapeError(f"{name} has {len(arr)} entries but there are {n} samples; give one per sample")
    if len(arr) and arr.dtype.kind not in "iu":
        raise error(f"{name} must be integers, got dtype {arr.dtype}")
    if len(arr) and arr.min() < 0:
        raise error(f"{name} must be non-negative, got {int(arr.min())}")
    if len(arr) and arr.max() > np.iinfo(np.uint16).max:
        raise error(f"{name} must fit in uint16 (<= 65535), got {int(arr.max())}")
    return arr


def _as_strings(values, name: str) -> list[str]:
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bytes):
            v = v.decode("utf-8")
        if not isinstance(v, str):
            raise InvalidInputError(f"{name}[{i}] must be a string, got {v!r}")
        out.append(v)
    return out


def _meta_array(values, name: str):
    vals = list(values) if not isinstance(values, np.ndarray) else values
    arr = np.asarray(vals)
    if arr.ndim != 1:
        raise ShapeError(f"meta_info[{name!r}] must be 1-D (one entry per speaker id), got shape {arr.shape}")
    if arr.dtype.kind in "USO":
        return np.array(_as_strings(arr.tolist(), f"meta_info[{name!r}]"), dtype=object), h5py.string_dtype()
    if arr.dtype.kind not in "biuf":
        raise InvalidInputError(f"meta_info[{name!r}] must hold numbers or strings, got dtype {arr.dtype}")
    return arr, arr.dtype


def write_shd(
    path,
    times,
    units,
    labels,
    speakers=None,
    keys=None,
    meta_info=None,
    n_channels: int = SHD_N_CHANNELS,
    *,
    times_dtype=TIMES_DTYPE,
    units_dtype=UNITS_DTYPE,
    require_sorted: bool = True,
) -> str:
    """Write samples to ``path`` in the SHD HDF5 layout, atomically; returns the path written.

    ``times[i]`` / ``units[i]``: sample ``i``'s spike times (seconds) and channel ids; ``labels``
    one class index per sample; ``speakers`` one speaker id per sample (default: all 0);
    ``keys`` class index -> word name (default ``"0", "1", ...`` up to the largest label);
    ``meta_info``: ``{"gender": [...], "age": [...], "body_height": [...]}`` indexed by speaker
    id (default: none; other names are written too). Everything is validated before the file is
    created. Times are stored as ``times_dtype`` (``float16`` like the published files: about
    3 significant digits, i.e. at most 0.49 ms rounding error below 2 s; ``float32`` for more).
    """
    if isinstance(n_channels, bool) or not isinstance(n_channels, (int, np.integer)) or not (
        1 <= n_channels <= 65536
    ):
        raise InvalidInputError(f"n_channels must be an integer in 1..65536, got {n_channels!r}")
    tdt, udt = np.dtype(times_dtype), np.dtype(units_dtype)
    if tdt.kind != "f":
        raise InvalidInputError(f"times_dtype must be a float dtype (float16/32/64), got {tdt}")
    if udt.kind not in "iu" or (n_channels - 1) > np.iinfo(udt).max:
        raise InvalidInputError(f"units_dtype must be an integer dtype that holds {n_channels - 1}, got {udt}")
    if isinstance(times, np.ndarray) and times.dtype != object:
        raise ShapeError("times must be a list of 1-D arrays (one per sample), not one dense array")
    times, units = list(times), list(units)
    n = len(times)
    if len(units) != n:
        raise ShapeError(f"times has {n} samples but units has {len(units)}; give one array of each per sample")
    labels = _as_index_array(labels, "labels", n)
    speakers = np.zeros(n, dtype=SPEAKER_DTYPE) if speakers is None else _as_index_array(speakers, "speakers", n)

    t_out = np.empty(n, dtype=object)
    u_out = np.empty(n, dtype=object)
    for i in range(n):
        t, u = check_events(
            times[i], units[i], n_channels, where=f"sample {i}", require_sorted=require_sorted
        )
        with np.errstate(over="ignore"):
            tc = t.astype(tdt)
        if len(tc) and not np.isfinite(tc).all():
            raise DataError(
                f"sample {i}: a spike time ({float(t.max())} s) overflows {tdt} (max {float(np.finfo(tdt).max)}); "
                f"use times_dtype='float32'"
            )
        t_out[i] = tc
        u_out[i] = u.astype(udt)

    n_classes = int(labels.max()) + 1 if n else 0
    if keys is None:
        keys = [str(k) for k in range(n_classes)]
    else:
        keys = _as_strings(list(keys), "keys")
        if len(keys) < n_classes:
            raise ShapeError(
                f"keys names {len(keys)} classes but labels go up to {n_classes - 1}; give one name per class"
            )
    meta = {}
    if meta_info is not None:
        if not isinstance(meta_info, dict):
            raise InvalidInputError(f"meta_info must be a dict of per-speaker arrays, got {type(meta_info).__name__}")
        n_speakers = int(speakers.max()) + 1 if n else 0
        for name, values in meta_info.items():
            if not isinstance(name, str) or not name or "/" in name:
                raise InvalidInputError(f"meta_info key {name!r} must be a plain name like 'gender'")
            arr, dt = _meta_array(values, name)
            if len(arr) < n_speakers:
                raise ShapeError(
                    f"meta_info[{name!r}] has {len(arr)} entries but speaker ids go up to {n_speakers - 1}; "
                    f"it is indexed by speaker id"
                )
            meta[name] = (arr, dt)

    path = os.fspath(path)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with atomic_path(path) as tmp:
            with h5py.File(tmp, "w") as f:
                f.attrs["n_channels"] = int(n_channels)
                spikes = f.create_group("spikes")
                for name, col, dt in (("times", t_out, tdt), ("units", u_out, udt)):
                    ds = spikes.create_dataset(name, shape=(n,), dtype=h5py.vlen_dtype(dt))
                    for i in range(n):  # per sample: a bulk write of equal-length arrays mis-broadcasts
                        ds[i] = col[i]
                f.create_dataset("labels", data=labels.astype(LABELS_DTYPE))
                extra = f.create_group("extra")
                extra.create_dataset("speaker", data=speakers.astype(SPEAKER_DTYPE))
                extra.create_dataset("keys", data=np.array(keys, dtype=object), dtype=h5py.string_dtype())
                mg = extra.create_group("meta_info")
                for name, (arr, dt) in meta.items():
                    mg.create_dataset(name, data=arr, dtype=dt)
    except OSError as exc:
        raise DataError(f"cannot write {path} ({type(exc).__name__}: {exc}); check that the "
                        f"folder is writable and the path is not a folder") from None
    return path
