"""Atomic file output: nothing half-written on disk, ever.

:func:`atomic_path` yields a temporary path in the target's folder; the caller writes the
file there (with any library: h5py, numpy, torch, plain ``open``); on success the file is
moved over the target with ``os.replace`` (atomic on POSIX), on any exception it is removed
and the target is left untouched.
"""

from __future__ import annotations

import contextlib
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


def write_atomic(path: str | os.PathLike, write) -> None:
    """``write(tmp_path)`` (any writer: ``fig.savefig``, ``json.dump`` to an opened file, ...), then
    ``tmp_path`` becomes ``path`` -- the one-call form of :func:`atomic_path` the sims use."""
    with atomic_path(path) as tmp:
        write(tmp)


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
