"""Run directories and atomic file writes.

Every file is written to a temporary name in its destination folder, flushed, fsynced and then
moved over the destination with ``os.replace`` -- a reader (or a run killed with ``kill -9``)
sees the old file or the new one, never half of one.

A run is built in ``<out>.partial/`` and renamed to ``<out>/`` only when it is complete, so
``<out>/`` always holds a finished run (``config.yaml``, ``checkpoint.pt``, ``metrics.json``,
``plots/*.png``, ``log.txt``). A run that stops early (killed, or an error after training has
started) leaves ``<out>.partial/`` with its last checkpoint; ``--resume`` continues it. A run
that fails before its first checkpoint removes ``<out>.partial/`` again.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from neuroadapt._io import atomic_write, atomic_write_json, atomic_write_text, fsync_dir  # noqa: F401  (re-exported)
from neuroadapt.errors import CheckpointError

__all__ = ["atomic_write", "atomic_write_text", "atomic_write_json", "RunDir", "partial_path"]


def partial_path(out: str | os.PathLike) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".partial")


def looks_like_run(path: Path) -> bool:
    return path.is_dir() and (path / "config.yaml").is_file()


class RunDir:
    """Where a run writes; ``write=False`` (DDP ranks other than 0) turns every write into a no-op."""

    def __init__(self, out: str | os.PathLike, write: bool = True, echo: bool = True):
        self.out = Path(out)
        self.path = partial_path(self.out)
        self.write = write
        self.echo = echo
        self._log: list[str] = []
        self.created = False

    # -- lifecycle ------------------------------------------------------------------------------
    def create(self, config_text: str) -> None:
        """Make ``<out>.partial/`` with ``config.yaml`` (the resolved recipe)."""
        if self.write:
            self.path.mkdir(parents=True, exist_ok=False)
            self.created = True
            atomic_write_text(self.path / "config.yaml", config_text)
            self.flush_log()

    def reopen(self) -> None:
        """Continue a partial run (after ``kill -9`` or an error): keep its log."""
        if (self.path / "log.txt").is_file():
            self._log = (self.path / "log.txt").read_text(encoding="utf-8").splitlines(keepends=True)

    def discard(self) -> None:
        """Remove the partial directory this process created (failure before the first checkpoint)."""
        if self.write and self.created and self.path.exists():
            shutil.rmtree(self.path, ignore_errors=True)
            self.created = False

    def finish(self) -> Path:
        """Rename ``<out>.partial/`` to ``<out>/``; a previous run at ``<out>`` is replaced only now."""
        if not self.write:
            return self.out
        old = None
        if self.out.exists():
            old = self.out.with_name(f".{self.out.name}.old-{os.getpid()}")
            os.rename(self.out, old)
        os.rename(self.path, self.out)
        fsync_dir(self.out.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        self.path = self.out
        return self.out

    # -- files ---------------------------------------------------------------------------------
    def file(self, name: str) -> Path:
        return self.path / name

    def write_text(self, name: str, text: str) -> None:
        if self.write:
            atomic_write_text(self.path / name, text)

    def write_json(self, name: str, obj) -> None:
        if self.write:
            atomic_write_json(self.path / name, obj)

    def log(self, message: str, echo: bool | None = None) -> None:
        """Timestamped line in ``log.txt`` (rewritten atomically); also printed on rank 0."""
        if not self.write:
            return
        if self.echo if echo is None else echo:
            print(message, flush=True)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self._log.append(f"[{stamp}] {message}\n")
        if self.path.is_dir():
            self.flush_log()

    def flush_log(self) -> None:
        if self.write and self.path.is_dir():
            atomic_write_text(self.path / "log.txt", "".join(self._log))


def prepare_out(out: Path, resume: bool, overwrite: bool) -> str:
    """Decide what to do with ``out``: 'new', 'resume-partial' or 'resume-finished'.

    Raises :class:`CheckpointError` when the request does not fit what is on disk.
    """
    partial = partial_path(out)
    if resume:
        if (partial / "checkpoint.pt").is_file():
            return "resume-partial"
        if (out / "checkpoint.pt").is_file():
            return "resume-finished"
        raise CheckpointError(
            f"--resume: no checkpoint in {partial} or {out}; start the run without --resume"
        )
    if partial.exists() and not overwrite:
        raise CheckpointError(
            f"an unfinished run exists at {partial}; continue it with --resume, or pass --overwrite to discard it"
        )
    if out.exists():
        if not overwrite:
            raise CheckpointError(
                f"run directory {out} already exists; use --resume to continue it, --overwrite to replace it, "
                f"or choose another --out"
            )
        if not looks_like_run(out):
            raise CheckpointError(f"refusing to overwrite {out}: it is not a neuroadapt run directory (no config.yaml)")
    return "new"


def clear_partial(out: Path) -> None:
    partial = partial_path(out)
    if partial.exists():
        if not looks_like_run(partial) and any(partial.iterdir()):
            raise CheckpointError(f"refusing to remove {partial}: it is not a neuroadapt run directory")
        shutil.rmtree(partial)
