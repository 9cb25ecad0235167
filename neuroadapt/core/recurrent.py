"""Fused time scan for recurrent LIF layers (snnTorch ``RLeaky`` / ``RSynaptic``).

The recurrence needs a matrix product per step (``W s_{t-1}``), so it cannot run in the
elementwise C kernel; instead the forward loop runs without an autograd graph and the
backward pass is a hand-written reverse loop (one GEMM per step) followed by one GEMM for
the weight gradient over all steps.  Memory kept for backward: membrane (and synaptic
current) of shape ``(T, B, N)``; spikes are recomputed from the membrane.

Dynamics (snnTorch 1.0 order of operations, ``r_t = H(m_{t-1} - θ)`` detached)::

    leaky:     p_t = β m_{t-1} + x_t + rec(s_{t-1})
    synaptic:  syn_t = α syn_{t-1} + x_t + rec(s_{t-1});   p_t = β m_{t-1} + syn_t
    subtract:  m_t = p_t - r_t θ;   zero: m_t = p_t - p_t r_t;   none: m_t = p_t
    s_t = H(m_t - θ)

``zero_now`` (snnTorch's ``reset_delay=False`` with a zero reset, leaky layers only): the membrane
is zeroed in the step it fires, ``a_t = p_t - p_t r_t``, ``s_t = H(a_t - θ)``,
``m_t = a_t - (s_t - r_t) a_t`` -- the surrogate gradient flows through the reset term ``s_t a_t``
as in snnTorch (``r_t`` stays detached).

``rec(s) = s W^T + b`` (all-to-all, ``nn.Linear``) or ``rec(s) = V * s`` (one-to-one).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from neuroadapt.core.surrogate import SpikeFn, atan, surrogate_derivative
from neuroadapt.errors import ShapeError, UnsupportedOptionError

_MODES = {"subtract": 0, "zero": 1, "none": 2, "zero_now": 3}
_DEFAULT_SPIKE = atan()


def _rec(s, W, b, one_to_one):
    return s * W if one_to_one else F.linear(s, W, b)


class _RecScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, mem0, spk0, syn0, W, b, beta, alpha, thr, mode, one_to_one, spike_fn):
        T = x.shape[0]
        synaptic = alpha is not None
        M = torch.empty_like(x)
        SYN = torch.empty_like(x) if synaptic else None
        m, s, syn = mem0, spk0, syn0
        r = (mem0 - thr > 0).to(x.dtype)  # afterwards r_t = H(m_{t-1} - θ) is the previous step's spike
        if mode == 3:
            return _RecScan._forward_zero_now(ctx, x, mem0, spk0, W, b, beta, thr, one_to_one, spike_fn, r)
        for t in range(T):
            rec = _rec(s, W, b, one_to_one)
            if synaptic:  # (α syn + x) + rec, then β m + syn: snnTorch's order of operations
                syn = torch.mul(alpha, syn, out=SYN[t]).add_(x[t]).add_(rec)
                p = torch.mul(beta, m).add_(syn)
            else:
                p = torch.mul(beta, m).add_(x[t]).add_(rec)
            if mode == 0:
                torch.sub(p, r * thr, out=M[t])
            elif mode == 1:
                torch.sub(p, p * r, out=M[t])
            else:
                M[t] = p
            m = M[t]
            s = r = torch.gt(m, thr).to(x.dtype)
        S = (M - thr > 0).to(x.dtype)
        ctx.save_for_backward(M, SYN, mem0, spk0, syn0, W, b, beta, alpha, thr)
        ctx.mode, ctx.one_to_one, ctx.spike_fn = mode, one_to_one, spike_fn
        outs = (S, M, SYN) if synaptic else (S, M)
        return outs

    @staticmethod
    def _forward_zero_now(ctx, x, mem0, spk0, W, b, beta, thr, one_to_one, spike_fn, r):
        T = x.shape[0]
        M, A = torch.empty_like(x), torch.empty_like(x)
        m, s = mem0, spk0
        for t in range(T):
            p = torch.mul(beta, m).add_(x[t]).add_(_rec(s, W, b, one_to_one))
            a = torch.sub(p, p * r, out=A[t])
            s = torch.gt(a, thr).to(x.dtype)
            m = torch.sub(a, (s - r) * a, out=M[t])
            r = torch.gt(m, thr).to(x.dtype)
        S = (A - thr > 0).to(x.dtype)
        ctx.save_for_backward(M, A, mem0, spk0, None, W, b, beta, None, thr)
        ctx.mode, ctx.one_to_one, ctx.spike_fn = 3, one_to_one, spike_fn
        return S, M

    @staticmethod
    def _backward_zero_now(ctx, gS, gM):
        M, A, mem0, spk0, _, W, b, beta, _, thr = ctx.saved_tensors
        one_to_one = ctx.one_to_one
        T = M.shape[0]
        gsur = surrogate_derivative(ctx.spike_fn, A - thr)
        S = (A - thr > 0).to(M.dtype)
        Mprev = torch.cat([mem0.unsqueeze(0), M[:-1]], 0)
        R = (Mprev - thr > 0).to(M.dtype)   # the delayed reset r_t (detached)
        dm_da = (1 - S + R) - A * gsur        # m_t = a_t - (s_t - r_t) a_t, s_t = H(a_t - θ)
        Gin = torch.empty_like(M)            # dL/dp_t: p_t receives x_t, rec(s_{t-1}) and β m_{t-1}
        Gthr = torch.empty_like(M)
        Gin_n = torch.zeros_like(mem0)
        for t in range(T - 1, -1, -1):
            ds = _rec_T(Gin_n, W, one_to_one) if t < T - 1 else torch.zeros_like(mem0)
            if gS is not None:
                ds = ds + gS[t]
            gm = beta * Gin_n if t < T - 1 else torch.zeros_like(mem0)
            if gM is not None:
                gm = gm + gM[t]
            Gthr[t] = (gm * A[t] - ds) * gsur[t]
            Gin[t] = (gm * dm_da[t] + ds * gsur[t]) * (1 - R[t])
            Gin_n = Gin[t]
        need = ctx.needs_input_grad
        Sprev = torch.cat([spk0.unsqueeze(0), S[:-1]], 0)
        dx = Gin if need[0] else None
        dmem0 = beta * Gin[0] if need[1] else None
        dspk0 = _rec_T(Gin[0], W, one_to_one) if need[2] else None
        dW, db = _weight_grads(Gin, Sprev, W, b, one_to_one, need)
        dbeta = (Gin * Mprev).sum_to_size(beta.shape) if need[6] else None
        dthr = Gthr.sum_to_size(thr.shape) if need[8] else None
        return dx, dmem0, dspk0, None, dW, db, dbeta, None, dthr, None, None, None

    @staticmethod
    def backward(ctx, gS, gM, gSYN=None):
        if ctx.mode == 3:
            return _RecScan._backward_zero_now(ctx, gS, gM)
        M, SYN, mem0, spk0, syn0, W, b, beta, alpha, thr = ctx.saved_tensors
        mode, one_to_one = ctx.mode, ctx.one_to_one
        synaptic = alpha is not None
        T = M.shape[0]
        gsur = surrogate_derivative(ctx.spike_fn, M - thr)
        Mprev = torch.cat([mem0.unsqueeze(0), M[:-1]], 0)
        keep = (Mprev - thr <= 0).to(M.dtype)  # 1 - r_t
        S = (M - thr > 0).to(M.dtype)
        Sprev = torch.cat([spk0.unsqueeze(0), S[:-1]], 0)
        G = torch.empty_like(M)       # dL/dm_t (total)
        Gin = torch.empty_like(M)     # dL/d(the sum that receives x_t and rec(s_{t-1}))
        Gsp = torch.empty_like(M)     # dL/ds_t (total) * surrogate derivative
        Gpre_n = torch.zeros_like(mem0)
        Gin_n = torch.zeros_like(mem0)
        Gsyn_n = torch.zeros_like(mem0)
        for t in range(T - 1, -1, -1):
            ds = _rec_T(Gin_n, W, one_to_one) if t < T - 1 else torch.zeros_like(mem0)
            if gS is not None:
                ds = ds + gS[t]
            Gsp[t] = ds * gsur[t]
            g = Gsp[t] + beta * Gpre_n
            if gM is not None:
                g = g + gM[t]
            G[t] = g
            Gpre = g * keep[t] if mode == 1 else g
            if synaptic:
                Gsyn = Gpre + alpha * Gsyn_n
                if gSYN is not None:
                    Gsyn = Gsyn + gSYN[t]
                Gin[t] = Gsyn
                Gsyn_n = Gsyn
            else:
                Gin[t] = Gpre
            Gpre_n, Gin_n = Gpre, Gin[t]
        need = ctx.needs_input_grad
        Gpre_all = G * keep if mode == 1 else G
        dx = Gin if need[0] else None
        dmem0 = beta * Gpre_all[0] if need[1] else None
        dspk0 = _rec_T(Gin[0], W, one_to_one) if need[2] else None
        dsyn0 = alpha * Gin[0] if (synaptic and need[3]) else None
        dW, db = _weight_grads(Gin, Sprev, W, b, one_to_one, need)
        dbeta = (Gpre_all * Mprev).sum_to_size(beta.shape) if need[6] else None
        dalpha = None
        if synaptic and need[7]:
            SYNprev = torch.cat([syn0.unsqueeze(0), SYN[:-1]], 0)
            dalpha = (Gin * SYNprev).sum_to_size(alpha.shape)
        dthr = None
        if need[8]:
            gthr = -Gsp
            if mode == 0:
                gthr = gthr - G * (1 - keep)
            dthr = gthr.sum_to_size(thr.shape)
        return dx, dmem0, dspk0, dsyn0, dW, db, dbeta, dalpha, dthr, None, None, None


def _weight_grads(Gin, Sprev, W, b, one_to_one, need):
    """Gradients of the recurrent weight and bias from dL/d(input sum) ``Gin`` and the previous spikes."""
    N = Gin.shape[-1]
    dW = db = None
    if need[4]:
        if one_to_one:
            dW = (Gin * Sprev).sum_to_size(W.shape) if W.dim() else (Gin * Sprev).sum()
        else:
            dW = Gin.reshape(-1, N).t() @ Sprev.reshape(-1, N)
    if b is not None and need[5]:
        db = Gin.reshape(-1, N).sum(0)
    return dW, db


def _rec_T(g, W, one_to_one):
    return g * W if one_to_one else g @ W


def recurrent_scan(x, weight, bias, beta, threshold, *, alpha=None, mem0=None, spk0=None, syn0=None,
                   reset: str = "subtract", one_to_one: bool = False, spike_fn: SpikeFn | None = None):
    """Run a recurrent LIF layer over ``x`` of shape ``(T, B, N)``.

    ``weight``: ``(N, N)`` recurrent matrix (with ``bias`` ``(N,)`` or ``None``), or with
    ``one_to_one=True`` a scalar / ``(N,)`` self-coupling ``V``.  ``alpha`` given: current-based
    (``RSynaptic``) dynamics.  Returns ``(spk, mem)`` or ``(spk, syn, mem)`` when ``alpha`` is given.
    """
    if reset not in _MODES:
        raise UnsupportedOptionError(f"reset mechanism {reset!r} is not supported; use one of {tuple(_MODES)}")
    if x.dim() != 3:
        raise ShapeError(f"recurrent_scan expects (T, B, N) input, got shape {tuple(x.shape)}")
    if reset == "zero_now" and alpha is not None:
        raise UnsupportedOptionError("reset 'zero_now' (reset_delay=False) is fused for leaky layers only")
    T, B, N = x.shape
    if not one_to_one and tuple(weight.shape) != (N, N):
        raise ShapeError(f"recurrent weight has shape {tuple(weight.shape)}; expected ({N}, {N})")

    def z(s):
        return torch.zeros(B, N, dtype=x.dtype, device=x.device) if s is None else s.to(x.dtype).expand(B, N)

    def p(v):
        return None if v is None else torch.as_tensor(v, device=x.device).to(x.dtype)

    W = p(weight)
    out = _RecScan.apply(x.contiguous(), z(mem0), z(spk0), z(syn0) if alpha is not None else None, W,
                         p(bias), p(beta), p(alpha), p(threshold), _MODES[reset], one_to_one,
                         spike_fn or _DEFAULT_SPIKE)
    if alpha is not None:
        S, M, SYN = out
        return S, SYN, M
    return out
