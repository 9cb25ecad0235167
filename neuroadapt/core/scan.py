"""Fused time scans for LIF dynamics, with their own backward pass.

The input projection of a layer is one matrix multiply over all T*B rows, done by the
caller; what is left is the elementwise recurrence over time.  These functions run it in
one compiled loop (``_lif_kernels.c`` through ctypes on CPU, float32/float64) or, where
the kernel is unavailable (no C compiler, CUDA tensors, half precision), in an equivalent
torch loop.  Both run without building an autograd graph: the backward pass is a second
reverse scan plus a handful of vectorised reductions, so memory for BPTT is one membrane
tensor of shape ``(T, B, N)`` instead of snnTorch's per-step graph.

Dynamics (snnTorch 1.0, ``reset_delay=True``; ``r_t = H(m_{t-1} - θ)`` is detached)::

    subtract:  m_t = β m_{t-1} + x_t - r_t θ
    zero:      m_t = β (1 - r_t) m_{t-1} + x_t          (Leaky)
    zero_all:  m_t = (1 - r_t)(β m_{t-1} + x_t)         (Synaptic / recurrent layers)
    none:      m_t = β m_{t-1} + x_t
    s_t = H(m_t - θ)    (surrogate derivative in the backward pass)

Gradients flow to ``x``, ``mem0``, ``β`` and ``θ`` exactly as autograd would through
snnTorch's step-by-step code.
"""

from __future__ import annotations

import ctypes

import torch

from neuroadapt.core._ckernel import kernels
from neuroadapt.core.surrogate import SpikeFn, atan, surrogate_derivative
from neuroadapt.errors import ShapeError, UnsupportedOptionError

MODES = {"subtract": 0, "zero": 1, "zero_all": 2, "none": 3}
_DEFAULT_SPIKE = atan()


def _ptr(t: torch.Tensor) -> ctypes.c_void_p:
    return ctypes.c_void_p(t.data_ptr())


def _use_kernel(*tensors: torch.Tensor):
    t0 = tensors[0]
    if t0.device.type != "cpu" or t0.dtype not in (torch.float32, torch.float64):
        return None
    lib = kernels()
    if lib is None:
        return None
    return lib, ("f32" if t0.dtype == torch.float32 else "f64")


# --------------------------------------------------------------------------- forward/backward
def _lif_forward(x, mem0, beta, thr, mode):
    """x: (T, M) contiguous; mem0: (M,); beta, thr: (N,). Returns (mem, spk), both (T, M)."""
    T, M = x.shape
    N = beta.numel()
    mem = torch.empty_like(x)
    k = _use_kernel(x)
    if k is not None:
        lib, sfx = k
        spk = torch.empty_like(x)
        getattr(lib, f"lif_forward_{sfx}")(_ptr(x), _ptr(mem0), _ptr(beta), _ptr(thr), _ptr(mem),
                                           _ptr(spk), T, M, N, mode)
        return mem, spk
    xb, memb = x.view(T, -1, N), mem.view(T, -1, N)
    prev = mem0.view(-1, N)
    for t in range(T):  # same arithmetic order as the C kernel and snnTorch
        r = (prev - thr > 0).to(x.dtype)
        if mode == 0:
            v = beta * prev + xb[t] - r * thr
        elif mode == 1:
            v = beta * ((1 - r) * prev) + xb[t]
        elif mode == 2:
            v = beta * prev + xb[t]
            v = v - v * r
        else:
            v = beta * prev + xb[t]
        memb[t] = v
        prev = memb[t]
    return mem, (memb - thr > 0).to(x.dtype).view(T, M)


def _lif_reverse(gspk, gmem, mem, beta, thr, mode, spike_fn):
    """dL/dm_t (total): G[t] = c[t] + a[t+1] G[t+1], c[t] = gspk[t] S'(m[t] - θ) + gmem[t];
    a = β, or β (1 - r) for the zero modes.  The surrogate derivative of neuroadapt's own
    spike functions is evaluated inside the C loop; any other one once, vectorised, here."""
    T, M = mem.shape
    N = beta.numel()
    G = torch.empty_like(mem)
    k = _use_kernel(mem)
    surr, param = getattr(spike_fn, "kernel_code", (0, 0.0))
    if gspk is not None and (k is None or surr == 0):
        thr_m = thr.repeat(M // N)
        c = surrogate_derivative(spike_fn, mem - thr_m) * gspk
        gspk, gmem, surr = (c if gmem is None else c + gmem), None, 0
    if k is not None:
        lib, sfx = k
        null = ctypes.c_void_p(None)
        getattr(lib, f"lif_backward_{sfx}")(null if gspk is None else _ptr(gspk.contiguous()),
                                            null if gmem is None else _ptr(gmem.contiguous()),
                                            _ptr(mem), _ptr(beta), _ptr(thr), _ptr(G),
                                            T, M, N, mode, surr, param)
        return G
    c = gspk if gmem is None else (gmem if gspk is None else gspk + gmem)
    cb, Gb, mb = c.view(T, -1, N), G.view(T, -1, N), mem.view(T, -1, N)
    Gb[T - 1] = cb[T - 1]
    for t in range(T - 2, -1, -1):
        a = beta if mode in (0, 3) else beta * (mb[t] - thr <= 0).to(c.dtype)
        Gb[t] = cb[t] + a * Gb[t + 1]
    return G


def _linear(x, y0, a, reverse):
    """y[t] = a y[t-1] + x[t] (forward) or y[t] = a y[t+1] + x[t] (reverse, y0 unused)."""
    T, M = x.shape
    N = a.numel()
    y = torch.empty_like(x)
    k = _use_kernel(x)
    if k is not None:
        lib, sfx = k
        getattr(lib, f"linear_scan_{sfx}")(_ptr(x), _ptr(y0), _ptr(a), _ptr(y), T, M, N, int(reverse))
        return y
    xb, yb = x.view(T, -1, N), y.view(T, -1, N)
    if not reverse:
        prev = y0.view(-1, N)
        for t in range(T):
            yb[t] = a * prev + xb[t]
            prev = yb[t]
    else:
        yb[T - 1] = xb[T - 1]
        for t in range(T - 2, -1, -1):
            yb[t] = a * yb[t + 1] + xb[t]
    return y


def _reduce_to(g: torch.Tensor, n: int) -> torch.Tensor:
    return g.reshape(-1, n).sum(0)


class _LIFScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, mem0, beta, thr, mode, spike_fn):
        mem, spk = _lif_forward(x, mem0, beta, thr, mode)
        ctx.save_for_backward(mem, mem0, beta, thr)
        ctx.mode, ctx.spike_fn = mode, spike_fn
        return spk, mem

    @staticmethod
    def backward(ctx, gspk, gmem):
        mem, mem0, beta, thr = ctx.saved_tensors
        mode, M, N = ctx.mode, mem.shape[1], beta.numel()
        need = ctx.needs_input_grad
        if gspk is not None:
            gspk = gspk.contiguous()
        G = _lif_reverse(gspk, None if gmem is None else gmem.contiguous(), mem, beta, thr, mode,
                         ctx.spike_fn)
        thr_m = thr.repeat(M // N)
        keep = mprev = None  # keep = 1 - r_t, only for the zero modes and the parameter gradients
        if need[2] or mode in (1, 2) or (need[3] and mode == 0):
            mprev = torch.cat([mem0.unsqueeze(0), mem[:-1]], 0)
            keep = None if mode in (0, 3) else (mprev - thr_m <= 0).to(mem.dtype)
        dx = dmem0 = dbeta = dthr = None
        if need[0]:
            dx = G if mode != 2 else G * keep
        if need[1]:
            a1 = beta.repeat(M // N) if keep is None else beta.repeat(M // N) * keep[0]
            dmem0 = a1 * G[0]
        if need[2]:
            dbeta = _reduce_to(G * (mprev if keep is None else keep * mprev), N)
        if need[3]:
            dthr = torch.zeros_like(thr)
            if gspk is not None:
                dthr = dthr - _reduce_to(surrogate_derivative(ctx.spike_fn, mem - thr_m) * gspk, N)
            if mode == 0:
                dthr = dthr - _reduce_to(G * (mprev - thr_m > 0).to(G.dtype), N)
        return dx, dmem0, dbeta, dthr, None, None


class _LinearScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y0, a):
        y = _linear(x, y0, a, reverse=False)
        ctx.save_for_backward(y, y0, a)
        return y

    @staticmethod
    def backward(ctx, gy):
        y, y0, a = ctx.saved_tensors
        N = a.numel()
        G = _linear(gy.contiguous(), y0, a, reverse=True)
        need = ctx.needs_input_grad
        dy0 = a.repeat(y.shape[1] // N) * G[0] if need[1] else None
        da = None
        if need[2]:
            yprev = torch.cat([y0.unsqueeze(0), y[:-1]], 0)
            da = _reduce_to(G * yprev, N)
        return G, dy0, da


# --------------------------------------------------------------------------- public API
def _prepare(x: torch.Tensor, name: str):
    if x.dim() < 2:
        raise ShapeError(f"{name}: expected a time-major tensor (T, ..., N), got shape {tuple(x.shape)}")
    T, N = x.shape[0], x.shape[-1]
    return x.reshape(T, -1).contiguous(), T, N


def _param(p, n: int, like: torch.Tensor, name: str) -> torch.Tensor:
    p = torch.as_tensor(p, device=like.device).to(like.dtype)
    if p.numel() == 1:
        return p.reshape(1).expand(n).contiguous()
    if p.numel() != n:
        raise ShapeError(f"{name} has {p.numel()} values; expected 1 or one per neuron ({n})")
    return p.reshape(n).contiguous()


def _state(s, x2: torch.Tensor, shape, name: str) -> torch.Tensor:
    if s is None:
        return torch.zeros(x2.shape[1], dtype=x2.dtype, device=x2.device)
    s = torch.as_tensor(s, device=x2.device).to(x2.dtype)
    if s.numel() != x2.shape[1]:
        s = s.expand(shape[1:]) if s.dim() <= len(shape) - 1 else s
        if s.numel() != x2.shape[1]:
            raise ShapeError(f"{name} has shape {tuple(s.shape)}; expected {tuple(shape[1:])}")
    return s.reshape(-1).contiguous()


def leaky_scan(x, beta, threshold, mem0=None, *, reset: str = "subtract",
               spike_fn: SpikeFn | None = None):
    """Run ``T`` steps of the leaky (snnTorch ``Leaky``) neuron on ``x`` of shape ``(T, ..., N)``.

    ``beta``/``threshold``: scalars or one value per neuron (tensors keep their gradients).
    ``reset``: ``"subtract"``, ``"zero"`` or ``"none"``.  Returns ``(spk, mem)``, both
    ``(T, ..., N)``.
    """
    if reset not in ("subtract", "zero", "none", "zero_all"):
        raise UnsupportedOptionError(
            f"reset mechanism {reset!r} is not supported; use 'subtract', 'zero' or 'none'")
    x2, T, N = _prepare(x, "leaky_scan")
    spk, mem = _LIFScan.apply(x2, _state(mem0, x2, x.shape, "mem0"), _param(beta, N, x2, "beta"),
                              _param(threshold, N, x2, "threshold"), MODES[reset],
                              spike_fn or _DEFAULT_SPIKE)
    return spk.view(x.shape), mem.view(x.shape)


def linear_scan(x, decay, y0=None):
    """First-order linear filter ``y_t = decay * y_{t-1} + x_t`` over ``x`` of shape ``(T, ..., N)``."""
    x2, T, N = _prepare(x, "linear_scan")
    y = _LinearScan.apply(x2, _state(y0, x2, x.shape, "y0"), _param(decay, N, x2, "decay"))
    return y.view(x.shape)


def synaptic_scan(x, alpha, beta, threshold, syn0=None, mem0=None, *, reset: str = "subtract",
                  spike_fn: SpikeFn | None = None):
    """Current-based LIF (snnTorch ``Synaptic``, NIR ``CubaLIF``) over ``x`` of shape ``(T, ..., N)``.

    ``syn_t = α syn_{t-1} + x_t`` (never reset), then the membrane scan with ``syn`` as input;
    ``reset="zero"`` zeroes the whole new membrane as snnTorch's ``Synaptic`` does.
    Returns ``(spk, syn, mem)``.
    """
    if reset not in ("subtract", "zero", "none"):
        raise UnsupportedOptionError(
            f"reset mechanism {reset!r} is not supported; use 'subtract', 'zero' or 'none'")
    syn = linear_scan(x, alpha, syn0)
    spk, mem = leaky_scan(syn, beta, threshold, mem0, reset="zero_all" if reset == "zero" else reset,
                          spike_fn=spike_fn)
    return spk, syn, mem
