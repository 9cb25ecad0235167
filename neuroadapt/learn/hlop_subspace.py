"""HLOP's lateral subspace neurons of one layer (:class:`LateralSubspace`), the reference form of
the Oja subspace update and principal angles; see :mod:`neuroadapt.learn.hlop` for the method."""
from __future__ import annotations

import torch

from neuroadapt.errors import ConfigError

__all__ = ["LateralSubspace", "oja_subspace_update", "principal_angles"]


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
