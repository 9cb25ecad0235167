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
from neuroadapt.learn.hlop_subspace import LateralSubspace, oja_subspace_update, principal_angles

__all__ = ["HLOP", "LateralSubspace", "oja_subspace_update", "principal_angles"]

SUPPORTED = (nn.Linear, nn.Conv1d, nn.Conv2d)
NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)
PROJ_TYPES = ("weight", "input")
HEBBIAN_INPUTS = ("steps", "rate")


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
