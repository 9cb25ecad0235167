"""The ELM memory recurrence over ``T`` steps, fused, with a hand-written backward pass.

What is left of the ELM neuron once the synaptic traces and the input half of the first MLP
layer have been computed for all steps at once (:func:`neuroadapt.core.elm.elm_sequence`)::

    z_t   = zin_t + W_rec m_{t-1}                 W_rec = W_mem diag(κ_m)   (H, d_m)
    h_t   = act(z_t);  h_t = act(W_k h_t + b_k)   for the extra hidden layers k
    o_t   = W_out h_t + b_out
    m_t   = κ_m ⊙ m_{t-1} + g ⊙ 1.7159 tanh(2/3 o_t)

The forward loop runs without an autograd graph, results written into preallocated
``(T, B, ·)`` buffers.  The backward pass is one reverse loop (two matrix products per step)
followed by a few large matrix products for the weight gradients over all steps.  Gradients
flow to ``zin``, ``m0``, ``W_rec``, the MLP weights, ``κ_m`` (the explicit decay of the
update) and ``g``.

Two implementations of the same loops:

* **fused C loop** (CPU, float32/float64, no extra hidden layers — the ELM default): each
  step is two calls of the BLAS ``?gemm_`` that torch itself links (its address is looked up
  in torch's library) and two short element-wise passes in C (``_elm_scan.h``, built with
  the input kernels of :mod:`neuroadapt.core.elm_input`); no Python or torch dispatch inside
  the loop.  For float32 on a CPU with AVX2 and FMA the two products of a step use a
  register-blocked kernel with the weights packed once per loop instead (``_elm_pgemm.h``; the
  BLAS routine repacks them on every call): same products, summed in ascending order with one
  fused multiply-add per term, so float32 results differ from the BLAS path by rounding only
  (``USE_PACKED = False`` selects the BLAS path).  The activation derivatives, ``dL/dκ_m``, ``dL/dg`` and ``dL/db_out`` are
  accumulated inside the backward loop instead of as whole-sequence tensors afterwards.
  Kept for backward: ``h``, ``σ(2B o)`` and ``m`` (and ``z`` for SiLU).  On first use it is
  checked against the torch loop on a small float64 problem (and the packed float32 kernel on
  a float32 one, with block and panel remainders); if they disagree (or the BLAS
  routine is not found, no compiler, ``NEUROADAPT_NO_CKERNEL=1``) the torch loop runs.
* **torch loop** (everything else: CUDA, extra hidden layers, other dtypes): four to six
  small ops per step; kept for backward: ``z``, the sigmoid values and ``m``.
"""

from __future__ import annotations

import ctypes
import os
import threading
import warnings
from pathlib import Path

import torch

from neuroadapt.errors import ShapeError, UnsupportedOptionError

TANH_A, TANH_B = 1.7159, 2.0 / 3.0   # LeCun's scaled tanh: A tanh(B x)
ACTIVATIONS = ("relu", "silu", "tanh")


def activation(name: str):
    """The MLP non-linearity ``name`` as a function (``relu``, ``silu`` or ``tanh``)."""
    if name == "relu":
        return torch.relu
    if name == "silu":
        return torch.nn.functional.silu
    if name == "tanh":
        return torch.tanh
    raise UnsupportedOptionError(f"mlp activation {name!r} is not supported; choose one of {', '.join(ACTIVATIONS)}")


_ACT_CODE = {"relu": 0, "silu": 1, "tanh": 2}
_fused_lock = threading.Lock()
_fused_state: dict = {"tried": False, "value": None, "packed": False}
USE_FUSED = True   # set False to force the torch loop (tests compare the two)
USE_PACKED = True  # float32 fused loop: packed-weight kernel where built (False: the BLAS routine)


def _blas_gemm() -> dict | None:
    """Addresses of ``sgemm_`` / ``dgemm_`` in the library torch runs on, by dtype, or ``None``."""
    import sys

    if sys.byteorder != "little":   # the integer arguments are passed in 64-bit little-endian slots
        return None
    lib_dir = Path(torch.__file__).parent / "lib"
    for name in ("libtorch_cpu.so", "libtorch_cpu.dylib"):
        if (lib_dir / name).exists():
            lib = ctypes.CDLL(str(lib_dir / name))
            try:
                return {torch.float32: ctypes.cast(lib.sgemm_, ctypes.c_void_p).value,
                        torch.float64: ctypes.cast(lib.dgemm_, ctypes.c_void_p).value}
            except AttributeError:
                return None
    return None


def fused_kernels():
    """``(library, gemm addresses)`` of the fused C loop, or ``None`` where it cannot run (module
    docstring); checked once against the torch loop before it is used."""
    if os.environ.get("NEUROADAPT_NO_CKERNEL", "") not in ("", "0"):
        return None
    if not _fused_state["tried"]:
        with _fused_lock:
            if not _fused_state["tried"]:
                try:
                    from neuroadapt.core.elm_input import kernels

                    lib, gemm = kernels(), _blas_gemm()
                    if lib is not None and gemm is not None and all(gemm.values()):
                        _fused_state["value"] = (lib, gemm)
                        err = _self_check()
                        _fused_state["packed"] = bool(lib.elm_packed_available()) and err < 1e-10
                        if _fused_state["packed"]:
                            err32 = _self_check(torch.float32)
                            if not err32 < 1e-5:   # float32 rounding of O(1) values over a few steps
                                _fused_state["packed"] = False
                                warnings.warn(f"neuroadapt: packed float32 ELM kernel disagrees with the torch "
                                              f"loop ({err32:.2e}); using the BLAS routine", RuntimeWarning)
                        if not err < 1e-10:
                            _fused_state["value"] = None
                            warnings.warn(f"neuroadapt: fused ELM memory loop disagrees with the torch loop "
                                          f"({err:.2e}); using the torch loop", RuntimeWarning)
                except Exception as exc:  # library or BLAS symbol missing: the torch loop runs
                    _fused_state["value"] = None
                    warnings.warn(f"neuroadapt: fused ELM memory loop unavailable ({exc}); using the torch loop",
                                  RuntimeWarning)
                _fused_state["tried"] = True
    return _fused_state["value"]


def _self_check(dtype=torch.float64) -> float:
    """Largest difference of outputs and gradients, fused C loop vs torch loop (tiny): the plain
    loop for every activation, and the loop with the trace inside.  float32: 7 batch rows (a block
    of 6 and a remainder) and widths 19 / 17 (a full panel of 16 and a partial one)."""
    from neuroadapt.core.scan import linear_scan

    gen = torch.Generator().manual_seed(0)
    T, B, H, D = (5, 3, 7, 4) if dtype == torch.float64 else (4, 7, 19, 17)

    def r(*shape):
        return (torch.rand(*shape, generator=gen, dtype=dtype) - 0.5).requires_grad_()

    worst = 0.0
    with torch.enable_grad():   # the first use may come inside torch.no_grad()
        args = [r(T, B, H), r(B, D), r(H, D), r(D, H), r(D), r(D) + 0.5, r(D)]
        trace = [r(B, H), (r(1) + 1.3) / 2, r(H)]          # a0, κ_s in (0.4, 0.9), b1
        g = torch.rand(T, B, D, generator=gen, dtype=dtype)
        for act in ("relu", "silu", "tanh"):
            outs = []
            for fused in (True, False):
                m = _MemoryScan.apply(*args, act, fused)
                outs.append([m] + list(torch.autograd.grad(m, args, g)))
            worst = max([worst] + [float((a - b).detach().abs().max()) for a, b in zip(*outs)])
        u, rest = args[0], args[1:]
        m_f = _TracedScan.apply(u, *trace, *rest, "relu")
        zin = linear_scan(u, trace[1], trace[0]) + trace[2]
        m_t = _MemoryScan.apply(zin, *rest, "relu", False)
        inputs = [u, *trace, *rest]
        pairs = zip([m_f, *torch.autograd.grad(m_f, inputs, g)], [m_t, *torch.autograd.grad(m_t, inputs, g)])
        worst = max([worst] + [float((a - b).detach().abs().max()) for a, b in pairs])
    return worst


def _p(t):
    return ctypes.c_void_p(t.data_ptr())


def _act_and_deriv(z: torch.Tensor, name: str):
    if name == "relu":
        return torch.relu(z), (z > 0).to(z.dtype)
    if name == "silu":
        s = torch.sigmoid(z)
        return z * s, s * (1 + z * (1 - s))
    t = torch.tanh(z)
    return t, 1 - t * t


class _MemoryScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, zin, m0, w_rec, w_out, b_out, kappa, gain, act_name, fused, *hidden):
        ctx.fused = bool(fused)
        if ctx.fused:
            return _fused_forward(ctx, zin, m0, w_rec, w_out, b_out, kappa, gain, act_name)
        T, B, H = zin.shape
        act = activation(act_name)
        n_hidden = len(hidden) // 2
        Z = [torch.empty_like(zin)] + [torch.empty(T, B, hidden[2 * k].shape[0], dtype=zin.dtype,
                                                   device=zin.device) for k in range(n_hidden)]
        D = m0.shape[-1]
        S = torch.empty(T, B, D, dtype=zin.dtype, device=zin.device)   # σ(2B o_t): A tanh(B o) = A (2σ(2B o) - 1)
        M = torch.empty_like(S)
        # right-hand matrices contiguous (addmm with a transposed view is up to 2x slower on CPU);
        # the output layer pre-scaled by 2B, so that A tanh(B o) = A (2 σ(2B o) - 1) needs one sigmoid
        # (about 3x cheaper than tanh on CPU) and m_t = (-A g + κ m) + 2A g σ two fused multiply-adds
        w_rec_t = w_rec.t().contiguous()
        w_out_t2, b_out2 = (w_out.t() * (2 * TANH_B)).contiguous(), b_out * (2 * TANH_B)
        hidden_t = [hidden[2 * k].t().contiguous() for k in range(n_hidden)]
        neg_g1, g2 = gain * -TANH_A, gain * (2 * TANH_A)
        m = m0
        for t in range(T):
            h = act(torch.addmm(zin[t], m, w_rec_t, out=Z[0][t]))
            for k in range(n_hidden):
                h = act(torch.addmm(hidden[2 * k + 1], h, hidden_t[k], out=Z[k + 1][t]))
            sg = torch.sigmoid(torch.addmm(b_out2, h, w_out_t2), out=S[t])
            m = torch.addcmul(torch.addcmul(neg_g1, kappa, m), g2, sg, out=M[t])
        ctx.save_for_backward(m0, w_rec, w_out, kappa, gain, M, S, *Z, *hidden)
        ctx.act_name, ctx.n_hidden = act_name, n_hidden
        return M

    @staticmethod
    def backward(ctx, gM):
        if ctx.fused:
            return _fused_backward(ctx, gM)
        saved = ctx.saved_tensors
        m0, w_rec, w_out, kappa, gain, M, S = saved[:7]
        n_hidden = ctx.n_hidden
        Z = list(saved[7 : 8 + n_hidden])
        hidden = saved[8 + n_hidden :]
        T, B, D = M.shape
        acts, derivs = zip(*[_act_and_deriv(z, ctx.act_name) for z in Z])
        C = (gain * (4 * TANH_A * TANH_B)) * S * (1 - S)   # d m_t / d o_t = g A B (1 - tanh²)
        G = torch.empty_like(M)                           # dL/dm_t, total
        dO = torch.empty_like(M)
        dZ = [torch.empty_like(z) for z in Z]
        gM = torch.zeros_like(M) if gM is None else gM
        # G_t = gM_t + κ G_{t+1} + W_rec^T dz_{t+1}: one addcmul and one addmm per step
        g_next = dz_next = None
        for t in range(T - 1, -1, -1):
            if g_next is None:
                g = G[t].copy_(gM[t])
            else:
                g = torch.addmm(torch.addcmul(gM[t], kappa, g_next), dz_next, w_rec, out=G[t])
            dh = torch.mm(torch.mul(g, C[t], out=dO[t]), w_out)
            for k in range(n_hidden, 0, -1):
                dh = torch.mm(torch.mul(dh, derivs[k][t], out=dZ[k][t]), hidden[2 * (k - 1)])
            dz_next = torch.mul(dh, derivs[0][t], out=dZ[0][t])
            g_next = g
        carry = torch.addmm(kappa * g_next, dz_next, w_rec)   # dL/dm_0
        need = ctx.needs_input_grad
        Mprev = torch.cat([m0.unsqueeze(0), M[:-1]], 0)

        def flat(a):
            return a.reshape(-1, a.shape[-1])

        d_zin = dZ[0] if need[0] else None
        d_m0 = carry if need[1] else None
        d_wrec = flat(dZ[0]).t() @ flat(Mprev) if need[2] else None
        d_wout = flat(dO).t() @ flat(acts[-1]) if need[3] else None
        d_bout = flat(dO).sum(0) if need[4] else None
        d_kappa = flat(G * Mprev).sum(0) if need[5] else None
        d_gain = flat(G * (2 * S - 1)).sum(0) * TANH_A if need[6] else None
        d_hidden = []
        for k in range(n_hidden):
            d_hidden.append(flat(dZ[k + 1]).t() @ flat(acts[k]) if need[9 + 2 * k] else None)
            d_hidden.append(flat(dZ[k + 1]).sum(0) if need[10 + 2 * k] else None)
        return (d_zin, d_m0, d_wrec, d_wout, d_bout, d_kappa, d_gain, None, None, *d_hidden)


class _TracedScan(torch.autograd.Function):
    """The fused C loop with the synaptic trace inside: ``zin_t = a_t + b1``,
    ``a_t = κ_s a_{t-1} + u_t`` (:func:`traced_memory_scan`)."""

    @staticmethod
    def forward(ctx, u, a0, kappa_s, b1, m0, w_rec, w_out, b_out, kappa, gain, act_name):
        return _fused_forward(ctx, u, m0, w_rec, w_out, b_out, kappa, gain, act_name, (a0, kappa_s, b1))

    @staticmethod
    def backward(ctx, gM):
        dz, d_m0, d_wrec, d_wout, d_bout, d_kappa, d_gain, _, _, (du, d_a0, d_ks, d_b1) = _fused_backward(ctx, gM)
        need = ctx.needs_input_grad
        return (du if need[0] else None, d_a0 if need[1] else None, d_ks if need[2] else None,
                d_b1 if need[3] else None, d_m0, d_wrec, d_wout, d_bout, d_kappa, d_gain, None)


def _fused_forward(ctx, u, m0, w_rec, w_out, b_out, kappa, gain, act_name, trace=None):
    lib, gemm = _fused_state["value"]   # set by fused_kernels() before any fused call
    lib.elm_set_packed(int(USE_PACKED and _fused_state.get("packed", False)))
    T, B, H = u.shape
    D = m0.shape[-1]
    dt = u.dtype
    sfx = "f32" if dt == torch.float32 else "f64"
    w_rec, w_out, b_out, kappa, gain = (a.detach().contiguous() for a in (w_rec, w_out, b_out, kappa, gain))
    if trace is None:   # zin = u: a zero trace decay, start and bias
        a0, ks, b1 = torch.zeros(B, H, dtype=dt), torch.zeros(1, dtype=dt), torch.zeros(H, dtype=dt)
    else:
        a0, ks, b1 = (a.detach().contiguous() for a in trace)
    keep_a = trace is not None and ctx.needs_input_grad[2]   # dL/dκ_s needs every a_t
    A = torch.empty(T, B, H, dtype=dt) if keep_a else None
    Z = torch.empty(T, B, H, dtype=dt) if act_name == "silu" else torch.empty(0, dtype=dt)
    Hb = torch.empty(T, B, H, dtype=dt)
    S, M = torch.empty(T, B, D, dtype=dt), torch.empty(T, B, D, dtype=dt)
    P, W = torch.empty(B * max(H, D), dtype=dt), torch.empty(3 * B * H, dtype=dt)
    getattr(lib, f"elm_scan_fwd_{sfx}")(gemm[dt], T, B, H, D, _ACT_CODE[act_name], _p(u), _p(a0), _p(ks), _p(b1),
                                        _p(m0), _p(w_rec), _p(w_out), _p(b_out), _p(kappa), _p(gain),
                                        _p(A) if A is not None else None, _p(Z), _p(Hb), _p(S), _p(M), _p(P), _p(W))
    ctx.save_for_backward(m0, w_rec, w_out, kappa, gain, Z, Hb, S, M, a0, ks, A)
    ctx.act_name, ctx.traced = act_name, trace is not None
    return M


def _fused_backward(ctx, gM):
    m0, w_rec, w_out, kappa, gain, Z, Hb, S, M, a0, ks, A = ctx.saved_tensors
    lib, gemm = _fused_state["value"]
    lib.elm_set_packed(int(USE_PACKED and _fused_state.get("packed", False)))
    T, B, D = M.shape
    H = Hb.shape[-1]
    dt = M.dtype
    sfx = "f32" if dt == torch.float32 else "f64"
    gM = torch.zeros_like(M) if gM is None else gM.contiguous()
    dZ, dO = torch.empty(T, B, H, dtype=dt), torch.empty(T, B, D, dtype=dt)
    d_m0 = torch.empty(B, D, dtype=dt)
    d_kappa, d_gain, d_bout = (torch.empty(D, dtype=dt) for _ in range(3))
    P, G = torch.empty(B * max(H, D), dtype=dt), torch.empty(2 * B * D, dtype=dt)
    traced = ctx.traced
    dU = torch.empty(T, B, H, dtype=dt) if traced else None
    d_a0, d_b1, d_ks = torch.empty(B, H, dtype=dt), torch.empty(H, dtype=dt), torch.zeros(1, dtype=dt)
    opt = (lambda t: _p(t) if traced and t is not None else None)  # noqa: E731
    status = getattr(lib, f"elm_scan_bwd_{sfx}")(
        gemm[dt], T, B, H, D, _ACT_CODE[ctx.act_name], _p(gM), _p(m0), _p(w_rec), _p(w_out), _p(kappa), _p(gain),
        _p(Z), _p(Hb), _p(S), _p(M), _p(dZ), _p(dO), _p(d_m0), _p(d_kappa), _p(d_gain), _p(d_bout), _p(P), _p(G),
        _p(ks), _p(a0), opt(A), opt(dU), opt(d_a0), opt(d_b1), opt(d_ks))
    if status != 0:
        raise MemoryError(f"fused ELM memory loop: could not allocate {3 * D + H} doubles of scratch")
    need = ctx.needs_input_grad
    i_wrec = 5 if traced else 2   # position of w_rec among the inputs (_TracedScan: after u, a0, κ_s, b1, m0)
    d_wrec = None
    if need[i_wrec]:   # Σ_t dz_t^T m_{t-1}, with m_{-1} = m0: no concatenated copy of M
        # formed as (M^T dZ)^T: the (D x TB) (TB x H) product runs ~7 % faster than (H x TB) (TB x D)
        d_wrec = torch.mm(M[:-1].reshape(-1, D).t(), dZ[1:].reshape(-1, H)).t()
        d_wrec.addmm_(dZ[0].t(), m0)
    d_wout = torch.mm(dO.reshape(-1, D).t(), Hb.reshape(-1, H)) if need[i_wrec + 1] else None
    out = (dZ, d_m0, d_wrec, d_wout, d_bout, d_kappa, d_gain, None, None)
    if traced:
        return out + ((dU, d_a0, d_ks.reshape(ks.shape), d_b1),)
    return out


def _fused_ok(*tensors) -> bool:
    t0 = tensors[0]
    return (USE_FUSED and t0.dtype in (torch.float32, torch.float64)
            and all(t.device.type == "cpu" and t.dtype == t0.dtype for t in tensors)
            and fused_kernels() is not None)


def traced_memory_scan(u, a0, kappa_s, b1, m0, w_rec, w_out, b_out, kappa, gain, act: str = "relu", hidden=()):
    """:func:`memory_scan` of ``zin_t = a_t + b1`` with the linear trace ``a_t = κ_s a_{t-1} + u_t``
    (``a_{-1} = a0``; ``κ_s`` a scalar tensor): in the fused C loop, the trace is one more line of
    each step's element-wise pass and its reverse scan one more line of the backward pass;
    elsewhere :func:`neuroadapt.core.scan.linear_scan` followed by :func:`memory_scan`."""
    if not hidden and _fused_ok(u, a0, kappa_s, b1, m0, w_rec, w_out, b_out, kappa, gain):
        activation(act)
        return _TracedScan.apply(u.contiguous(), a0.contiguous(), kappa_s.reshape(1), b1, m0.contiguous(),
                                 w_rec, w_out, b_out, kappa, gain, act)
    from neuroadapt.core.scan import linear_scan

    zin = linear_scan(u, kappa_s.reshape(1), a0) + b1
    return memory_scan(zin, m0, w_rec, w_out, b_out, kappa, gain, act, hidden)


def memory_scan(zin, m0, w_rec, w_out, b_out, kappa, gain, act: str = "relu", hidden=()):
    """Run the ELM memory recurrence (module docstring) over ``zin`` of shape ``(T, B, H)``.

    ``m0``: ``(B, d_m)``; ``w_rec``: ``(H, d_m)``; ``w_out``: ``(d_m, H_last)``; ``b_out``, ``kappa``,
    ``gain``: ``(d_m,)``; ``hidden``: ``[(W_k, b_k), ...]`` of the MLP's extra hidden layers.
    Returns the memory ``m_t`` for every step, ``(T, B, d_m)``.
    """
    if zin.dim() != 3:
        raise ShapeError(f"memory_scan expects zin of shape (T, B, H), got {tuple(zin.shape)}")
    T, B, H = zin.shape
    D = w_rec.shape[1]
    if tuple(w_rec.shape) != (H, D) or tuple(m0.shape) != (B, D):
        raise ShapeError(f"memory_scan: w_rec {tuple(w_rec.shape)} / m0 {tuple(m0.shape)} do not fit "
                         f"zin {tuple(zin.shape)}; expected ({H}, d_m) and ({B}, d_m)")
    activation(act)  # validates the name
    flat = [t for layer in hidden for t in layer]
    fused = not flat and _fused_ok(zin, m0, w_rec, w_out, b_out, kappa, gain)
    return _MemoryScan.apply(zin.contiguous(), m0.contiguous(), w_rec, w_out, b_out, kappa, gain, act, fused,
                             *flat)
