"""The ELM input projection ``u = x @ W^T`` over all ``T·B`` rows, cheap for spike input.

Spike trains are mostly zeros (SHD-like data: a few % of the entries), so on the CPU the
projection and its weight gradient ``dW = g^T x`` run in a small C kernel
(``_elm_kernels.c``) that does work only for the non-zero entries of ``x``: ``nnz · H``
multiply-adds instead of ``T·B·n_in·H``.  The forward pass lists the non-zero entries once
(one pass over ``x``); the backward pass reuses the list, transposed.  It is used when ``x`` is
a float32/float64 CPU tensor that needs no gradient and at most ``SPARSE_MAX_DENSITY`` of its
entries are non-zero (counted exactly by that pass, which stops as soon as there are more);
otherwise (dense input, CUDA, no C compiler, ``NEUROADAPT_NO_CKERNEL=1``) it is a plain matrix
multiply.  Both give the same numbers up to float summation order.

The library is compiled with ``-mavx2 -mfma`` where ``/proc/cpuinfo`` lists both (the flags are
part of the cache key, so a library built for one CPU is never loaded on a CPU without them)
and with baseline flags elsewhere.  It also holds the fused memory loop of
:mod:`neuroadapt.core.elm_scan` (``_elm_scan.h``).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import threading
import warnings
from pathlib import Path

import torch

from neuroadapt._io import atomic_path
from neuroadapt.core._ckernel import _cache_dir, _compiler

SPARSE_MAX_DENSITY = 0.15
_WGRAD_BLOCK_BYTES = 256 * 1024   # slice of the output gradient the weight-gradient kernel keeps in cache
_SOURCE = Path(__file__).with_name("_elm_kernels.c")
_HEADERS = [Path(__file__).with_name(n) for n in ("_elm_scan.h", "_elm_pgemm.h")]   # included by _SOURCE (cache key)
# -fno-trapping-math: lets the compiler vectorise the clamps of the exp in the memory-scan loops
# (no effect on any computed value; nothing here relies on floating-point exceptions)
_FLAGS = ["-O3", "-fno-trapping-math", "-fPIC", "-shared"]


def _cpu_flags() -> list[str]:
    """``-mavx2 -mfma`` where this CPU has them (the cache key includes the flags)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            words = set(next((ln for ln in fh if ln.startswith("flags")), "").split())
    except OSError:
        return []
    return ["-mavx2", "-mfma"] if {"avx2", "fma"} <= words else []
_lock = threading.Lock()
_state: dict = {"tried": False, "lib": None}


def _build():
    src = _SOURCE.read_bytes() + b"".join(h.read_bytes() for h in _HEADERS)
    cc = _compiler()
    if cc is None:
        return None
    flags = _FLAGS + _cpu_flags()
    key = hashlib.sha256(src + " ".join([cc, *flags]).encode() + os.uname().machine.encode()).hexdigest()[:16]
    target = _cache_dir() / f"elm_kernels_{key}.so"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target, suffix=".so") as tmp:
            subprocess.run([cc, *flags, "-o", tmp, str(_SOURCE)], check=True, capture_output=True, timeout=120)
    lib = ctypes.CDLL(str(target))
    p, lng = ctypes.c_void_p, ctypes.c_long
    for sfx in ("f32", "f64"):
        getattr(lib, f"elm_nnz_{sfx}").argtypes = [p, lng, lng, lng, p, p, p]
        getattr(lib, f"elm_nnz_{sfx}").restype = lng
        getattr(lib, f"elm_project_{sfx}").argtypes = [p, p, p, p, p, lng, lng]
        getattr(lib, f"elm_transpose_{sfx}").argtypes = [p, p, p, lng, lng, lng, p, p, p]
        getattr(lib, f"elm_wgrad_{sfx}").argtypes = [p, p, p, p, p, lng, lng, lng]
        getattr(lib, f"elm_decay_sum_{sfx}").argtypes = [p, p, p, lng, lng, lng, p, p]
        getattr(lib, f"elm_scan_fwd_{sfx}").argtypes = [p, lng, lng, lng, lng, ctypes.c_int] + [p] * 17
        getattr(lib, f"elm_scan_bwd_{sfx}").argtypes = [p, lng, lng, lng, lng, ctypes.c_int] + [p] * 25
        for name in ("project", "transpose", "wgrad", "decay_sum", "scan_fwd"):
            getattr(lib, f"elm_{name}_{sfx}").restype = None
        getattr(lib, f"elm_scan_bwd_{sfx}").restype = ctypes.c_int   # -1: out of memory
    lib.elm_set_packed.argtypes, lib.elm_set_packed.restype = [ctypes.c_int], None
    lib.elm_packed_available.argtypes, lib.elm_packed_available.restype = [], ctypes.c_int
    return lib


def kernels():
    """The loaded kernel library, or ``None`` where it cannot be built."""
    if os.environ.get("NEUROADAPT_NO_CKERNEL", "") not in ("", "0"):
        return None
    if not _state["tried"]:
        with _lock:
            if not _state["tried"]:
                try:
                    _state["lib"] = _build()
                except Exception as exc:  # compiler missing or broken: dense matmul instead
                    warnings.warn(f"neuroadapt: ELM input kernels unavailable ({exc}); using dense matmul",
                                  RuntimeWarning)
                _state["tried"] = True
    return _state["lib"]


def _ptr(t):
    return ctypes.c_void_p(t.data_ptr())


def _nonzeros(x2: torch.Tensor, lib, sfx: str):
    """The non-zero entries of ``x2`` as rows ``(row_ptr, col, val)`` (one pass over ``x2``), or
    ``None`` when more than ``SPARSE_MAX_DENSITY`` of the entries are non-zero (the pass stops
    there, and the caller multiplies densely instead)."""
    R, K = x2.shape
    cap = min(R * K, int(SPARSE_MAX_DENSITY * R * K))
    if cap >= 2 ** 31:
        return None
    row_ptr = torch.empty(R + 1, dtype=torch.int32)
    col = torch.empty(cap, dtype=torch.int32)
    val = torch.empty(cap, dtype=x2.dtype)
    n = getattr(lib, f"elm_nnz_{sfx}")(_ptr(x2), R, K, cap, _ptr(row_ptr), _ptr(col), _ptr(val))
    return None if n < 0 else (row_ptr, col[:n], val[:n])


class _SparseProject(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, row_ptr, col, val, lib, sfx):
        R, H = row_ptr.numel() - 1, w.shape[0]
        wt = w.detach().t().contiguous()
        out = torch.empty(R, H, dtype=w.dtype)
        getattr(lib, f"elm_project_{sfx}")(_ptr(row_ptr), _ptr(col), _ptr(val), _ptr(wt), _ptr(out), R, H)
        ctx.save_for_backward(row_ptr, col, val)
        ctx.lib, ctx.sfx, ctx.n_in = lib, sfx, w.shape[1]
        return out

    @staticmethod
    def backward(ctx, g):
        row_ptr, col, val = ctx.saved_tensors
        g = g.contiguous()
        (R, H), K, lib, sfx = g.shape, ctx.n_in, ctx.lib, ctx.sfx
        rb = max(1, _WGRAD_BLOCK_BYTES // (H * g.element_size()))   # rows of g per cache-sized block
        nb = -(-R // rb)
        ptr, row, val_t = torch.empty(nb * K + 1, dtype=torch.int32), torch.empty_like(col), torch.empty_like(val)
        getattr(lib, f"elm_transpose_{sfx}")(_ptr(row_ptr), _ptr(col), _ptr(val), R, K, rb, _ptr(ptr), _ptr(row),
                                             _ptr(val_t))
        gwt = torch.empty(K, H, dtype=g.dtype)
        getattr(lib, f"elm_wgrad_{sfx}")(_ptr(ptr), _ptr(row), _ptr(val_t), _ptr(g), _ptr(gwt), nb, K, H)
        return gwt.t(), None, None, None, None, None


def project(x: torch.Tensor, w: torch.Tensor, decay: torch.Tensor | None = None):
    """``x @ w.T`` for ``x`` of shape ``(..., n_in)`` and ``w`` ``(H, n_in)`` (module docstring).

    With ``decay`` (``(T,)``, ``x`` of shape ``(T, B, n_in)``) also returns the decayed sum
    ``Σ_t decay[t] x[t]`` ``(B, n_in)``, from the same list of non-zeros where the kernel runs
    and ``decay`` needs no gradient (else ``torch.einsum``)."""
    shape = x.shape
    x2 = x.reshape(-1, shape[-1])
    use = (x.device.type == "cpu" and w.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
           and w.dtype == x.dtype and not x.requires_grad)
    lib = kernels() if use else None
    nz = None
    if lib is not None:
        sfx = "f32" if x.dtype == torch.float32 else "f64"
        nz = _nonzeros(x2.contiguous(), lib, sfx)
    out = (x2 @ w.t() if nz is None else _SparseProject.apply(w, *nz, lib, sfx)).view(*shape[:-1], w.shape[0])
    if decay is None:
        return out
    if nz is None or decay.requires_grad or decay.dtype != x.dtype or decay.device.type != "cpu":
        return out, torch.einsum("t,tbn->bn", decay, x)
    T, B, K = shape
    xs = torch.empty(B, K, dtype=x.dtype)
    getattr(lib, f"elm_decay_sum_{sfx}")(*(_ptr(t) for t in nz), T, B, K, _ptr(decay.contiguous()), _ptr(xs))
    return out, xs
