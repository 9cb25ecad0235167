"""Atomic file output: nothing half-written on disk, ever.

:func:`atomic_path` yields a temporary path in the target's folder; the caller writes the
file there (with any library: h5py, numpy, torch, plain ``open``); on success the file is
moved over the target with ``os.replace`` (atomic on POSIX), on any exception it is removed
and the target is left untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp"):
    """Context manager: ``with atomic_path(p) as tmp: write(tmp)`` then ``tmp`` becomes ``p``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        make_public(tmp)
        yield tmp
        with open(tmp, "rb") as f:  # durable before it becomes visible (kill -9 / power loss)
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write(path: str | os.PathLike, write_fn, mode: str = "wb") -> Path:
    """Call ``write_fn(fileobj)`` on a temp file next to ``path`` (its folder is created), then
    move it into place -- e.g. ``atomic_write(p, lambda f: fig.savefig(f, format="png"))``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            write_fn(f)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text), mode="w")


def atomic_write_json(path: str | os.PathLike, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def make_public(path) -> None:
    """Give a file made by ``mkstemp`` (mode 0600) the usual permissions (0666 minus the umask)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)
