"""Conversions between neuroadapt's event forms and files.

Forms (``docs/data.md``, "Event formats"):

* dense spike tensors ``(T, N)`` / ``(T, B, N)`` with a bin width ``dt``
  (:func:`neuroadapt.data.events.dense_to_events` / ``events_to_dense``;
  :func:`dense_to_tonic` / :func:`tonic_to_dense` in integer µs);
* tonic event arrays (:data:`TONIC_DTYPE`: ``t`` int64 µs, ``x`` channel, ``p`` = 1, exactly
  what ``tonic.datasets.SHD`` yields) -- :func:`to_tonic`, :func:`from_tonic`
  (:mod:`neuroadapt.data.tonic_events`, re-exported here);
* SHD samples (times in seconds, units) and SHD HDF5 files (:mod:`neuroadapt.data.shd`);
* AER binary files (:mod:`neuroadapt.data.aer`).

Files: ``shd`` (``.h5``/``.hdf5``), ``aer`` (``.aer``), ``tonic-npy`` (``.npy``: one sample,
``np.save`` of a tonic array), ``dense-npz`` (``.npz``: ``spikes (T, B, N)``, ``dt``, ``labels``,
``speakers``, ``keys``). :func:`read_events` reads any of them into an :class:`EventSet`,
:func:`write_events` writes one (atomically), :func:`convert_file` does both
(:func:`neuroadapt.data.info.info` summarises a file). The reader and writer of each format, and
:class:`EventSet`, are in :mod:`neuroadapt.data.event_files`.

Time quantisation: there is one rule, tonic's. Seconds become integer ticks by truncation
(``trunc(float64(t) * 1e9 / tick_ns)``; 1 µs ticks give exactly tonic's ``t``), and ticks become
seconds as the float of the target dtype that truncates back to the same tick
(:func:`~neuroadapt.data.events.ticks_to_seconds`). So ticks -> seconds -> ticks is exact
(float64 and float32 times; float16 where its spacing allows), and seconds -> ticks -> seconds
returns each time within one tick, exactly where the float spacing exceeds a tick (float16
SHD times >= 1.95 ms at 1 µs ticks; every float16 time at 1 ns ticks). Dense sources carry
integer-ns bin starts, so dense -> any form -> dense is exact when ``dt`` is a whole number of
ticks.
"""
from __future__ import annotations

import os

from neuroadapt.data.event_files import READERS, WRITERS, EventSet
from neuroadapt.data.tonic_events import (  # noqa: F401  (re-exported)
    TONIC_DTYPE,
    dense_to_tonic,
    from_tonic,
    to_tonic,
    tonic_to_dense,
)
from neuroadapt.errors import DataError, InvalidInputError

__all__ = [
    "TONIC_DTYPE", "to_tonic", "from_tonic", "dense_to_tonic", "tonic_to_dense",
    "FORMATS", "EventSet", "detect_format", "format_for_output", "read_events", "write_events",
    "convert_file",
]

# ------------------------------------------------------------------------------ formats
FORMATS = ("shd", "aer", "tonic-npy", "dense-npz")
_EXTENSIONS = {".h5": "shd", ".hdf5": "shd", ".aer": "aer", ".npy": "tonic-npy", ".npz": "dense-npz"}
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def detect_format(path) -> str:
    """The format of an existing file, from its first bytes (then its extension)."""
    from neuroadapt.data.aer import MAGIC

    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"input file not found: {path}")
    if os.path.isdir(path):
        raise DataError(f"{path} is a folder; give an event file (.h5, .aer, .npy, .npz)")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise DataError(f"cannot read {path} ({type(exc).__name__}: {exc})") from None
    if head == MAGIC:
        return "aer"
    if head == _HDF5_SIGNATURE:
        return "shd"
    if head.startswith(b"\x93NUMPY"):
        return "tonic-npy"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "dense-npz"
    ext = os.path.splitext(path)[1].lower()
    if ext in _EXTENSIONS:
        return _EXTENSIONS[ext]
    raise DataError(f"{path}: cannot tell its format (not HDF5, AER, .npy or .npz); formats: {', '.join(FORMATS)}")


def format_for_output(path, to: str | None = None) -> str:
    """``to`` if given (checked), else the format of ``path``'s extension."""
    if to is not None:
        if to not in FORMATS:
            raise InvalidInputError(f"unknown output format {to!r}; choose one of {', '.join(FORMATS)}")
        return to
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in _EXTENSIONS:
        raise InvalidInputError(
            f"cannot infer the output format from {os.fspath(path)!r}: use an extension "
            f"({', '.join(sorted(_EXTENSIONS))}) or --to {{{','.join(FORMATS)}}}"
        )
    return _EXTENSIONS[ext]


def read_events(path, fmt: str | None = None) -> EventSet:
    """Read an event file of any format (detected from its content when ``fmt`` is None)."""
    fmt = detect_format(path) if fmt is None else format_for_output(path, fmt)
    return READERS[fmt](os.fspath(path))


def write_events(path, es: EventSet, fmt: str | None = None, **options) -> dict:
    """Write ``es`` to ``path`` as ``fmt`` (default: from the extension), atomically.

    Options: ``times_dtype`` (shd; default the source's float dtype, else float32),
    ``layout`` / ``layout_params`` / ``tick_ns`` (aer; default spinnaker, 1 µs or the source's
    tick), ``dt`` / ``duration`` (dense-npz; default the source's dt, else 1 ms, and just enough
    bins for the last spike). Returns what was chosen (e.g. ``dropped_spikes`` for dense-npz).
    """
    fmt = format_for_output(path, fmt)
    return {"format": fmt, **WRITERS[fmt](os.fspath(path), es, **options)}


_OPTION_FORMATS = {"dt": ("dense-npz",), "duration": ("dense-npz",), "layout": ("aer",),
                   "layout_params": ("aer",), "tick_ns": ("aer",), "times_dtype": ("shd",)}
_OPTION_FLAGS = {"dt": "--dt", "duration": "--duration", "layout": "--address-layout",
                 "layout_params": "--neurons-per-core", "tick_ns": "--tick-ns", "times_dtype": "--times-dtype"}


def convert_file(src, dst, *, to: str | None = None, sample: int | None = None, **options) -> dict:
    """Convert the event file ``src`` to ``dst`` (format ``to``, default from ``dst``'s
    extension). ``sample`` keeps one sample. Options as :func:`write_events`; an option the
    output format does not use is an error. Returns a summary dict."""
    fmt = format_for_output(dst, to)
    for name, value in options.items():
        if name not in _OPTION_FORMATS:
            raise InvalidInputError(f"unknown conversion option {name!r}")
        if value is not None and fmt not in _OPTION_FORMATS[name]:
            flag = _OPTION_FLAGS.get(name, name)
            raise InvalidInputError(f"option {name} ({flag}) applies to output {' / '.join(_OPTION_FORMATS[name])}, "
                                    f"not {fmt}")
    es = read_events(src)
    if sample is not None:
        es = es.select(sample)
    chosen = write_events(dst, es, fmt, **{k: v for k, v in options.items() if v is not None})
    return {"input": os.fspath(src), "input_format": es.fmt, "output": os.fspath(dst), "samples": len(es),
            "spikes": es.n_spikes, **chosen}

