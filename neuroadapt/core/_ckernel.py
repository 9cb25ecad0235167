"""Build and load the C time-scan kernels (``_lif_kernels.c``) on first use.

The kernels have no Python or torch headers: the system C compiler builds them in well
under a second, into a per-user cache keyed by the source's hash, and ``ctypes`` calls
them on the tensors' memory.  Where no compiler is available, or ``NEUROADAPT_NO_CKERNEL=1``
is set, :func:`kernels` returns ``None`` and the callers fall back to an equivalent torch
loop (same arithmetic order, same results).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import threading
import warnings
from pathlib import Path

from neuroadapt._io import atomic_path

_SOURCE = Path(__file__).with_name("_lif_kernels.c")
# -ffp-contract=off: no fused multiply-add, so the rounding matches snnTorch's eager ops.
_FLAGS = ["-O3", "-ffp-contract=off", "-fno-fast-math", "-fPIC", "-shared"]
_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_tried = False


def _cache_dir() -> Path:
    root = os.environ.get("NEUROADAPT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "neuroadapt")
    return Path(root) / "kernels"


def _compiler() -> str | None:
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc):
            return cc
    return None


def _build() -> ctypes.CDLL | None:
    src = _SOURCE.read_bytes()
    cc = _compiler()
    if cc is None:
        return None
    key = hashlib.sha256(src + " ".join([cc, *_FLAGS]).encode() + os.uname().machine.encode()).hexdigest()[:16]
    target = _cache_dir() / f"lif_kernels_{key}.so"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target, suffix=".so") as tmp:  # concurrent builders race harmlessly
            subprocess.run([cc, *_FLAGS, "-o", tmp, str(_SOURCE)], check=True,
                           capture_output=True, timeout=120)
    lib = ctypes.CDLL(str(target))
    p, lng, i = ctypes.c_void_p, ctypes.c_long, ctypes.c_int
    for suffix in ("f32", "f64"):
        getattr(lib, f"lif_forward_{suffix}").argtypes = [p, p, p, p, p, p, lng, lng, lng, i]
        getattr(lib, f"lif_backward_{suffix}").argtypes = [p, p, p, p, p, p, lng, lng, lng, i, i,
                                                           ctypes.c_double]
        getattr(lib, f"linear_scan_{suffix}").argtypes = [p, p, p, p, lng, lng, lng, i]
        for name in ("lif_forward", "lif_backward", "linear_scan"):
            getattr(lib, f"{name}_{suffix}").restype = None
    return lib


def kernels() -> ctypes.CDLL | None:
    """The loaded kernel library, or ``None`` when it cannot be built here."""
    global _lib, _tried
    if os.environ.get("NEUROADAPT_NO_CKERNEL", "") not in ("", "0"):
        return None
    if _tried:
        return _lib
    with _lock:
        if not _tried:
            try:
                _lib = _build()
            except Exception as exc:  # compiler missing/broken: fall back, say so once
                warnings.warn(f"neuroadapt: C scan kernels unavailable ({exc}); "
                              "using the torch loop instead (same results, slower)", RuntimeWarning)
                _lib = None
            _tried = True
    return _lib
