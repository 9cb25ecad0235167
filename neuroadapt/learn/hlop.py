"""HLOP: Hebbian learning based orthogonal projection for continual learning (Xiao et al., ICLR 2024).

Each protected layer (``nn.Linear``, ``nn.Conv1d/2d``) gets ``M`` lateral "subspace neurons" with
weights ``H`` (M x n, n = the layer's presynaptic width; ``C_in*prod(k)`` for a convolution). They
see the layer's presynaptic activity ``x`` (rows: every sample and every time step, or every
unfolded patch of a convolution) and learn its principal subspace with Oja's subspace rule::

    y  = H x                                   (lateral forward)
    dH = <y x^T> - <y y^T> H                   (Hebbian minus anti-Hebbian, batch mean)
    dH <- clip(dH, -c, c); rows of old (frozen) blocks of H get dH = 0
    V  <- m V + (1 - m) dH ;  H <- H + eta V   (repeated ``iterations`` times per mini-batch)

From the second task on, weight gradients are projected out of the old tasks' subspace
(``H_old``, the rows merged at the end of earlier tasks)::

    grad_W = delta^T x_perp,   x_perp = (I - H_old^T H_old) x          (``proj_type="input"``)
           = G (I - H_old^T H_old),   G = the plain gradient            (``proj_type="weight"``)

The two are equal in exact arithmetic (the gradient is linear in the presynaptic rows); the weight
form needs no stored inputs or unfolding, works for any training rule whose update is built from
presynaptic activity or traces (BPTT, online traces), and is the default. The input form recomputes
the gradient from the recorded inputs and output gradients (kept to test the equivalence, and as in
the reference code).

Schedule (reference code): task 0 -- no projection, all neurons learn; task t > 0 -- new neurons
are appended (orthogonal init) with :meth:`HLOP.begin_task`, old rows are frozen, only the new
block learns, gradients are projected with the old rows only; :meth:`HLOP.end_task` merges the
blocks. After the first task normalisation layers are held in eval mode and 1-D parameters
(biases, norm affine, thresholds) are kept from changing (their gradients are set to ``None``, so
any torch optimiser skips them) -- otherwise the zero-interference argument fails.

Use::

    h = HLOP(model, lr=0.01)                # hooks on every Linear/Conv of the model
    for task in tasks:
        h.begin_task(n_new)                 # int, or {layer name: int}
        for x, y in task:
            loss = crit(model(x), y); opt.zero_grad(); loss.backward()
            h.step()                        # Hebbian update on this batch + gradient projection
            opt.step()
        h.end_task()
"""
from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F

from neuroadapt.errors import ConfigError, ShapeError, UnsupportedOptionError

__all__ = ["HLOP", "LateralSubspace", "oja_subspace_update", "principal_angles"]

SUPPORTED = (nn.Linear, nn.Conv1d, nn.Conv2d)
NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)
PROJ_TYPES = ("weight", "input")
HEBBIAN_INPUTS = ("steps", "rate")


def oja_subspace_update(H: torch.Tensor, x: torch.Tensor, n_frozen: int = 0, clamp: float = 10.0) -> torch.Tensor:
    """The Oja subspace-rule increment ``dH = <y x^T> - <y y^T> H`` (y = H x) for rows ``x`` (B, n);
    clipped to [-clamp, clamp]; the first ``n_frozen`` rows (old subspace) get zero."""
    y = x @ H.t()                                    # (B, M)
    dH = (y.t() @ x - (y.t() @ y) @ H) / x.shape[0]
    if clamp is not None:
        dH = dH.clamp(-clamp, clamp)
    if n_frozen:
        dH[:n_frozen] = 0
    return dH


def principal_angles(A, B) -> "numpy.ndarray":
    """Principal angles (degrees, ascending) between the row spaces of A (k1, n) and B (k2, n)."""
    import numpy as np

    qa, _ = np.linalg.qr(np.asarray(A, dtype=np.float64).T)
    qb, _ = np.linalg.qr(np.asarray(B, dtype=np.float64).T)
    s = np.linalg.svd(qa.T @ qb, compute_uv=False)
    return np.degrees(np.arccos(np.clip(s, -1.0, 1.0)))


class LateralSubspace:
    """The lateral neurons of one layer: ``H`` (M, n), its momentum ``V``, and the block split."""

    def __init__(self, name: str, n: int, lr: float, momentum: float, iterations: int, clamp: float,
                 device=None, dtype=torch.float32, orthogonal_init: bool = True):
        self.name, self.n = name, int(n)
        self.orthogonal_init = bool(orthogonal_init)
        self.lr, self.momentum, self.iterations, self.clamp = float(lr), float(momentum), int(iterations), clamp
        self.H = torch.zeros(0, self.n, device=device, dtype=dtype)
        self.V = torch.zeros_like(self.H)
        self.n_old = 0                               # rows merged at the end of earlier tasks (frozen)
        self._P = None                               # cached I - H_old^T H_old (large old blocks)

    @property
    def size(self) -> int:
        return self.H.shape[0]

    def add(self, m: int, generator: torch.Generator | None = None) -> None:
        if m < 0:
            raise ConfigError(f"HLOP layer {self.name!r}: cannot add {m} subspace neurons")
        if self.size + m > self.n:
            raise ConfigError(f"HLOP layer {self.name!r}: {self.size} + {m} subspace neurons exceed the layer's "
                              f"input dimension {self.n}; use at most {self.n - self.size} new neurons here")
        if m == 0:
            return
        g = torch.randn(self.n, m, generator=generator, dtype=torch.float64)
        if self.orthogonal_init and self.size:
            # start in the orthogonal complement of the existing rows: the Oja rule removes overlap
            # with old rows only along directions the new data excites, so overlap left by a random
            # start would stay and I - H^T H would no longer be a projector
            Hd = self.H.to(torch.float64)
            q0, _ = torch.linalg.qr(Hd.t())
            g = g - q0 @ (q0.t() @ g)
            g = g - q0 @ (q0.t() @ g)
        q, r = torch.linalg.qr(g)
        q = q * torch.sign(torch.diagonal(r))
        new = q.t().contiguous().to(self.H)
        self.H = torch.cat([self.H, new], 0)
        self.V = torch.cat([self.V, torch.zeros_like(new)], 0)

    def merge(self) -> None:
        self.n_old = self.size
        self._P = None
        self.V.zero_()          # frozen rows must not keep drifting on their momentum

    def hebbian(self, x: torch.Tensor) -> None:
        """``iterations`` Oja updates with momentum on the rows ``x`` (B, n); old rows frozen."""
        if self.size == self.n_old or x.shape[0] == 0:
            return
        x = x.to(self.H)
        # Only the new rows change (old rows are frozen); y = [y_old, y_new] and y_old is fixed
        # during the repetitions, so dH_new = y_new^T (x - y_old H_old) - (y_new^T y_new) H_new,
        # and x - y_old H_old = x (I - H_old^T H_old) = x_res, the projected input, is computed
        # once (by project_rows, which uses the cached projector when the old block is large).
        if self._cov_cheaper(x.shape[0]):
            self._hebbian_cov(x)
        else:
            self._hebbian_rows(x)

    def _cov_cheaper(self, B: int) -> bool:
        """Multiply-accumulates of the two equal forms of the update (rows vs covariance)."""
        n, M, k, it = self.n, self.size - self.n_old, self.n_old, self.iterations
        proj = min(n, 2 * k) if k else 0
        rows = B * n * proj + it * M * n * (2 * B + M)
        cov = B * n * n + n * n * proj + it * M * n * (2 * n + 2 * M)
        return cov < rows

    def _step(self, Hn: torch.Tensor, dH: torch.Tensor) -> None:
        """Clamp, momentum, and the update of the working copy ``Hn`` of the new rows."""
        if self.clamp is not None:
            dH.clamp_(-self.clamp, self.clamp)
        Vn = self.V[self.n_old:]
        Vn.mul_(self.momentum).add_(dH, alpha=1.0 - self.momentum)
        Hn.add_(Vn, alpha=self.lr)

    def _hebbian_rows(self, x: torch.Tensor) -> None:
        """Rows form (few rows, B < n): each repetition is one product
        ``[y_new^T / B, -(y_new^T y_new) / B] @ [x_res; H_new]`` -- both terms of dH in one GEMM."""
        k, B = self.n_old, x.shape[0]
        x_res = self.project_rows(x) if k else x
        Z = torch.cat([x_res, self.H[k:]], 0)        # (B + M_new, n); Z[B:] is H_new while it learns
        Hn = Z[B:]
        xt = x.t()
        coef = torch.empty(Hn.shape[0], B + Hn.shape[0], dtype=x.dtype, device=x.device)
        for _ in range(self.iterations):
            yt = Hn @ xt                              # y_new^T (M_new, B)
            torch.mul(yt, 1.0 / B, out=coef[:, :B])
            torch.mm(coef[:, :B], yt.t(), out=coef[:, B:]).neg_()
            self._step(Hn, coef @ Z)
        self.H[k:] = Hn

    def _hebbian_cov(self, x: torch.Tensor) -> None:
        """Covariance form (many rows, e.g. the patches of a convolution): with C = x^T x / B,
        y_new^T x_res / B = H_new C (I - H_old^T H_old) = H_new D and y_new^T y_new / B = H_new C H_new^T,
        so dH = H_new D - (H_new C H_new^T) H_new; the rows are read once, for C."""
        k = self.n_old
        C = torch.mm(x.t(), x).div_(x.shape[0])   # (n, n)
        D = self.project_rows(C) if k else C      # C (I - H_old^T H_old); C is symmetric
        Hn = self.H[k:].clone()
        for _ in range(self.iterations):
            S = torch.mm(Hn, C).mm(Hn.t())            # y_new^T y_new / B
            self._step(Hn, torch.mm(Hn, D).addmm_(S, Hn, alpha=-1.0))
        self.H[k:] = Hn

    @property
    def old(self) -> torch.Tensor:
        return self.H[: self.n_old]

    def project_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """``rows (I - H_old^T H_old)`` for rows (.., n).

        Factored (2 k MACs per element) while ``2 k <= n``; beyond, the n x n matrix
        ``I - H_old^T H_old`` (built once per task, n MACs per element) -- the same operator."""
        k = self.n_old
        if 2 * k <= self.n:
            Ho = self.old.to(rows)
            return rows - (rows @ Ho.t()) @ Ho
        if self._P is None or self._P.dtype != rows.dtype or self._P.device != rows.device:
            Ho = self.old.to(torch.float64)
            eye = torch.eye(self.n, dtype=torch.float64, device=Ho.device)
            self._P = (eye - Ho.t() @ Ho).to(rows)
        return rows @ self._P


class _Record:
    """What the hooks keep for one layer until the next step: ``inputs`` (presynaptic activity of
    every forward call; needed for Hebbian input "steps" and for input projection), ``grads``
    (output gradients, input projection) and ``hebb`` (Hebbian input "rate": per call, the
    firing rate of a time-major call -- averaged in the hook while the input is still in cache --
    or the per-step input as it came)."""
    __slots__ = ("inputs", "grads", "hebb")

    def __init__(self):
        self.inputs, self.grads, self.hebb = [], [], []


class HLOP:
    """Attach HLOP to ``model`` (any ``nn.Module``) without changing its code; see the module doc.

    ``layers``: names of modules to protect (default: every Linear / Conv1d / Conv2d not in
    ``exclude``); ``lr``: Hebbian rate, one float or {name: float}; ``proj_type``: "weight" or
    "input"; ``max_rows``: at most this many presynaptic rows per layer and batch feed the Hebbian
    update (a random subset; None = all, as in the reference); ``freeze_norm``: hold normalisation
    layers in eval mode and 1-D parameters fixed from the second task on; ``orthogonal_init``:
    new neurons start orthonormal *and orthogonal to the existing rows* (False: orthonormal among
    themselves only, as the reference code's initialiser); ``hebbian_input``: "steps" -- every time
    step is a row (the reference's BPTT variant) -- or "rate" -- the firing rate over the T steps
    (the reference's DSR variant; T times fewer rows, and the subspace of the rates is where the
    old tasks' mean activity lives).
    """

    def __init__(self, model: nn.Module, layers=None, exclude=(), lr=0.01, momentum: float = 0.9,
                 iterations: int = 5, clamp: float | None = 10.0, proj_type: str = "weight",
                 max_rows: int | None = None, freeze_norm: bool = True, seed: int = 0,
                 orthogonal_init: bool = True, hebbian_input: str = "steps"):
        if proj_type not in PROJ_TYPES:
            raise UnsupportedOptionError(f"HLOP proj_type {proj_type!r}: choose one of {', '.join(PROJ_TYPES)}")
        if hebbian_input not in HEBBIAN_INPUTS:
            raise UnsupportedOptionError(f"HLOP hebbian_input {hebbian_input!r}: choose one of "
                                         f"{', '.join(HEBBIAN_INPUTS)}")
        self.hebbian_input = hebbian_input
        if iterations < 1:
            raise ConfigError(f"HLOP iterations must be >= 1, got {iterations}")
        if not 0.0 <= momentum < 1.0:
            raise ConfigError(f"HLOP momentum must be in [0, 1), got {momentum}")
        self.model, self.proj_type, self.max_rows, self.freeze_norm = model, proj_type, max_rows, bool(freeze_norm)
        self.generator = torch.Generator().manual_seed(int(seed))
        named = dict(model.named_modules())
        exclude = set(exclude)
        for name in exclude:
            if name not in named:
                raise ConfigError(f"HLOP exclude: the model has no module {name!r}")
        if layers is None:
            layers = [n for n, m in named.items() if isinstance(m, SUPPORTED) and n not in exclude
                      and not any(n.startswith(e + ".") for e in exclude)]
            if not layers:
                raise UnsupportedOptionError(f"HLOP: {type(model).__name__} has no nn.Linear / nn.Conv1d / nn.Conv2d "
                                             "layer to protect")
        bad = [n for n in layers if n not in named]
        if bad:
            raise ConfigError(f"HLOP layers: the model has no module(s) {', '.join(map(repr, bad))}")
        unsupported = [f"{n} ({type(named[n]).__name__})" for n in layers if not isinstance(named[n], SUPPORTED)]
        if unsupported:
            raise UnsupportedOptionError(f"HLOP supports nn.Linear, nn.Conv1d and nn.Conv2d only; unsupported: "
                                         f"{', '.join(unsupported)}")
        self.modules = {n: named[n] for n in layers}
        self.excluded = exclude
        # 1-D parameters (norm affine, biases) outside excluded modules: held fixed after the first task
        skip = {id(p) for e in exclude for p in model.get_submodule(e).parameters()}
        self._frozen_1d = [p for p in model.parameters() if p.ndim <= 1 and id(p) not in skip] if freeze_norm else []
        self.subspaces: dict[str, LateralSubspace] = {}
        for n, m in self.modules.items():
            if isinstance(m, nn.Conv2d) or isinstance(m, nn.Conv1d):
                if m.groups != 1:
                    raise UnsupportedOptionError(f"HLOP layer {n!r}: grouped convolutions (groups={m.groups}) "
                                                 "are not supported")
                if isinstance(m.padding, str) or m.padding_mode != "zeros":
                    raise UnsupportedOptionError(f"HLOP layer {n!r}: use numeric zero padding")
                width = m.in_channels * math.prod(m.kernel_size)
            else:
                width = m.in_features
            rate = lr.get(n, None) if isinstance(lr, dict) else lr
            if rate is None:
                raise ConfigError(f"HLOP lr: no Hebbian rate for layer {n!r} (given for {sorted(lr)})")
            self.subspaces[n] = LateralSubspace(n, width, rate, momentum, iterations, clamp,
                                                device=m.weight.device, orthogonal_init=orthogonal_init)
        self._records = {n: _Record() for n in self.modules}
        self.task = -1
        self.collecting = True
        self._handles = [m.register_forward_hook(self._make_hook(n)) for n, m in self.modules.items()]
        self._norm_handles = []

    # -- hooks ----------------------------------------------------------------------------------
    def _make_hook(self, name):
        def hook(module, inputs, output):
            if not (module.training and self.collecting and torch.is_grad_enabled()):
                return
            rec = self._records[name]
            x = inputs[0].detach()
            if self.hebbian_input == "rate":
                rec.hebb.append(x.mean(0) if x.ndim > self._base(name) else x)
            if self.hebbian_input == "steps" or self.proj_type == "input":
                rec.inputs.append(x)
            if self.proj_type == "input" and self.task > 0 and output.requires_grad:
                idx = len(rec.grads)
                rec.grads.append(None)
                output.register_hook(lambda g, r=rec, i=idx: r.grads.__setitem__(i, g.detach()))
        return hook

    def remove(self) -> None:
        """Detach every hook (the model is left as it was)."""
        for h in self._handles + self._norm_handles:
            h.remove()
        self._handles, self._norm_handles = [], []

    def _rows(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """Presynaptic rows (N, n): every sample/time step, or every patch of a convolution."""
        m = self.modules[name]
        if isinstance(m, nn.Linear):
            return x.reshape(-1, m.in_features)
        if isinstance(m, nn.Conv1d):
            x = x.unsqueeze(-2)
            k, s, p, d = (1, m.kernel_size[0]), (1, m.stride[0]), (0, m.padding[0]), (1, m.dilation[0])
        else:
            k, s, p, d = m.kernel_size, m.stride, m.padding, m.dilation
        if x.ndim > 4:          # (T, B, C, H, W) time-major input
            x = x.reshape(-1, *x.shape[-3:])
        cols = F.unfold(x, k, dilation=d, padding=p, stride=s)        # (B, C*k*k, L)
        return cols.transpose(1, 2).reshape(-1, cols.shape[1])

    # -- schedule -------------------------------------------------------------------------------
    def begin_task(self, n_new) -> None:
        """Start a task: add ``n_new`` lateral neurons per layer (int, or {name: int})."""
        if isinstance(n_new, dict):
            unknown = set(n_new) - set(self.subspaces)
            if unknown:
                raise ConfigError(f"HLOP begin_task: no protected layer(s) {sorted(unknown)}; "
                                  f"protected: {sorted(self.subspaces)}")
        for name, sub in self.subspaces.items():
            m = n_new.get(name, 0) if isinstance(n_new, dict) else n_new
            sub.add(int(m), self.generator)
        self.task += 1
        self._clear()
        if self.task == 1 and self.freeze_norm:
            self._freeze_norms()

    def end_task(self) -> None:
        """Merge all blocks into the old (frozen) subspace used for projection from now on."""
        for sub in self.subspaces.values():
            sub.merge()
        self._clear()

    def _freeze_norms(self) -> None:
        def keep_eval(module, args):
            module.training = False
        for m in self.model.modules():
            if isinstance(m, NORM_TYPES):
                m.eval()
                self._norm_handles.append(m.register_forward_pre_hook(keep_eval))

    def _clear(self) -> None:
        for rec in self._records.values():
            rec.inputs.clear()
            rec.grads.clear()
            rec.hebb.clear()

    # -- per batch ------------------------------------------------------------------------------
    @torch.no_grad()
    def hebbian_step(self) -> None:
        """Oja updates of every layer's new block on the activity recorded since the last step."""
        for name, sub in self.subspaces.items():
            rec = self._records[name]
            inputs = rec.hebb if self.hebbian_input == "rate" else rec.inputs
            if not inputs or sub.size == sub.n_old:
                continue
            if self.hebbian_input == "rate":
                inputs = self._rates(name, inputs)
            rows = [self._rows(name, x) for x in inputs]
            rows = rows[0] if len(rows) == 1 else torch.cat(rows, 0)
            if self.max_rows is not None and rows.shape[0] > self.max_rows:
                pick = torch.randperm(rows.shape[0], generator=self.generator)[: self.max_rows]
                rows = rows[pick.to(rows.device)]
            sub.hebbian(rows)

    def _base(self, name) -> int:
        """Dimensions of one call's input without a leading time axis."""
        m = self.modules[name]
        return 2 if isinstance(m, nn.Linear) else (3 if isinstance(m, nn.Conv1d) else 4)

    def _rates(self, name, inputs):
        """Firing rates: time-major inputs averaged over T; per-step calls of one shape averaged."""
        base = self._base(name)
        out = [x.mean(0) if x.ndim > base else x for x in inputs]
        if len(out) > 1 and all(x.shape == out[0].shape for x in out):
            out = [torch.stack(out).mean(0)]
        return out

    @torch.no_grad()
    def project_gradients(self) -> None:
        """Project every protected weight gradient out of the old subspace (from task 1 on) and
        keep 1-D parameters fixed (their ``grad`` set to None) when ``freeze_norm``."""
        if self.task <= 0:
            return
        for name, m in self.modules.items():
            sub = self.subspaces[name]
            if m.weight.grad is None or sub.n_old == 0:
                continue
            if self.proj_type == "weight":
                grad = m.weight.grad
                out = sub.project_rows(grad.reshape(grad.shape[0], -1)).reshape(grad.shape)
                if grad._base is None and grad.is_contiguous():
                    m.weight.grad = out       # a fresh tensor: hand it over instead of copying it back
                else:                         # a view (e.g. a DDP bucket) or odd layout: keep it, in place
                    grad.copy_(out)
            else:
                m.weight.grad.copy_(self._input_projected_grad(name, m, sub))
        for p in self._frozen_1d:  # normalisation / bias parameters frozen after the first task
            p.grad = None

    def _input_projected_grad(self, name, m, sub) -> torch.Tensor:
        rec = self._records[name]
        if len(rec.grads) != len(rec.inputs) or any(g is None for g in rec.grads):
            raise ShapeError(f"HLOP layer {name!r}: input projection needs one backward pass per recorded forward "
                             "call; call project_gradients() after loss.backward() and before the next forward")
        total = torch.zeros(m.weight.shape[0], sub.n, dtype=m.weight.dtype, device=m.weight.device)
        for x, g in zip(rec.inputs, rec.grads):
            rows = sub.project_rows(self._rows(name, x))              # (N, n) projected presynaptic rows
            if isinstance(m, nn.Linear):
                delta = g.reshape(-1, m.out_features)
            else:
                if g.ndim > (4 if isinstance(m, nn.Conv2d) else 3):
                    g = g.reshape(-1, *g.shape[-(3 if isinstance(m, nn.Conv2d) else 2):])
                delta = g.reshape(g.shape[0], g.shape[1], -1).transpose(1, 2).reshape(-1, m.out_channels)
            total += delta.t() @ rows
        return total.reshape(m.weight.shape)

    def step(self) -> None:
        """After ``loss.backward()``, before ``optimizer.step()``: Hebbian update, then projection."""
        self.hebbian_step()
        self.project_gradients()
        self._clear()

    # -- inspection / persistence ---------------------------------------------------------------
    def sizes(self) -> dict:
        return {n: {"total": s.size, "old": s.n_old, "input_dim": s.n} for n, s in self.subspaces.items()}

    def state_dict(self) -> dict:
        return {"task": self.task, "H": {n: s.H.clone() for n, s in self.subspaces.items()},
                "V": {n: s.V.clone() for n, s in self.subspaces.items()},
                "n_old": {n: s.n_old for n, s in self.subspaces.items()}}

    def load_state_dict(self, state: dict) -> None:
        for n, s in self.subspaces.items():
            s.H, s.V, s.n_old = state["H"][n].clone(), state["V"][n].clone(), int(state["n_old"][n])
            s._P = None
        self.task = int(state["task"])
        if self.task >= 1 and self.freeze_norm and not self._norm_handles:
            self._freeze_norms()
