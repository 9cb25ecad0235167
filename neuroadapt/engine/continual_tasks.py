"""Task sequences, continual-learning methods and metrics used by :mod:`neuroadapt.engine.continual`.

Task sequences over any neuroadapt data set (``batch(split, index, generator) -> (x (T, B, n), y)``):

* ``permuted``: task k presents every input channel through a fixed random permutation
  (task 0: identity), all classes, one shared head;
* ``split``: task k holds classes ``[k c, (k+1) c)``; task-specific heads -- the readout's logits
  are restricted to the task's classes (a multi-head readout sharing one weight matrix whose
  rows belong to one task each).

A validation split is carved out of the training split (stratified, ``val_fraction``), so that
hyperparameters are tuned without touching the test split.

Metrics (the reference's definitions): accuracy matrix ``a[i, j]`` = accuracy on task j after
training task i; ``ACC = mean_j a[N-1, j]``; ``BWT = mean_{j < N-1} (a[N-1, j] - a[j, j])``.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from neuroadapt.errors import ConfigError

__all__ = ["TaskSequence", "acc_bwt", "EWC", "train_task", "evaluate_task"]


class TaskSequence:
    """``n_tasks`` tasks built from ``dataset``; splits 'train', 'val' (from the training split), 'test'."""

    def __init__(self, dataset, kind: str, n_tasks: int, classes_per_task: int = 2, val_fraction: float = 0.15,
                 seed: int = 0):
        if kind not in ("permuted", "split"):
            raise ConfigError(f"continual.sequence: {kind!r} is not one of permuted, split")
        if n_tasks < 2:
            raise ConfigError(f"continual.n_tasks must be >= 2, got {n_tasks}")
        if not 0.0 <= val_fraction < 1.0:
            raise ConfigError(f"continual.val_fraction must be in [0, 1), got {val_fraction}")
        self.dataset, self.kind, self.n_tasks = dataset, kind, int(n_tasks)
        rng = np.random.default_rng(seed)
        y_train = np.asarray(dataset.labels("train"))
        val = np.zeros(len(y_train), dtype=bool)
        for c in np.unique(y_train):
            idx = np.flatnonzero(y_train == c)
            rng.shuffle(idx)
            val[idx[: int(round(val_fraction * len(idx)))]] = True
        base = {"train": ("train", np.flatnonzero(~val)), "val": ("train", np.flatnonzero(val)),
                "test": ("test", np.arange(dataset.num_samples("test")))}
        self.n_classes = int(dataset.n_classes)
        if kind == "permuted":
            self.perms = [None] + [torch.from_numpy(rng.permutation(dataset.n_inputs)) for _ in range(n_tasks - 1)]
            self.classes = [list(range(self.n_classes))] * n_tasks
            self.index = {k: [v[1]] * n_tasks for k, v in base.items()}
        else:
            if classes_per_task < 1 or classes_per_task * n_tasks > self.n_classes:
                raise ConfigError(f"continual: {n_tasks} tasks x {classes_per_task} classes exceed the data set's "
                                  f"{self.n_classes} classes")
            self.perms = [None] * n_tasks
            self.classes = [list(range(k * classes_per_task, (k + 1) * classes_per_task)) for k in range(n_tasks)]
            self.index = {}
            for split, (src, idx) in base.items():
                y = np.asarray(dataset.labels(src))[idx]
                self.index[split] = [idx[np.isin(y, cls)] for cls in self.classes]
        self.source = {k: v[0] for k, v in base.items()}
        for split in ("train", "test"):
            empty = [k for k in range(n_tasks) if len(self.index[split][k]) == 0]
            if empty:
                raise ConfigError(f"continual: task(s) {empty} have no {split} samples")

    def num_samples(self, split: str, task: int) -> int:
        return len(self.index[split][task])

    def batch(self, split: str, task: int, positions, generator=None):
        idx = torch.as_tensor(self.index[split][task][np.asarray(positions)], dtype=torch.long)
        x, y = self.dataset.batch(self.source[split], idx, generator)
        if self.perms[task] is not None:
            x = x[..., self.perms[task]]
        return x, y

    def mask(self, task: int, device=None) -> torch.Tensor | None:
        """Additive logit mask of the task's head (None for a shared head)."""
        if self.kind == "permuted":
            return None
        m = torch.full((self.n_classes,), -math.inf, device=device)
        m[self.classes[task]] = 0.0
        return m


def acc_bwt(matrix) -> tuple[float, float]:
    a = np.asarray(matrix, dtype=float)
    n = a.shape[0]
    acc = float(a[-1].mean())
    bwt = float(np.mean([a[-1, j] - a[j, j] for j in range(n - 1)])) if n > 1 else 0.0
    return acc, bwt


@torch.no_grad()
def evaluate_task(model, seq: TaskSequence, split: str, task: int, batch_size: int = 256, seed: int = 0) -> float:
    was = model.training
    model.eval()
    n, correct = seq.num_samples(split, task), 0
    mask = seq.mask(task)
    for b in range(math.ceil(n / batch_size)):
        pos = np.arange(b * batch_size, min(n, (b + 1) * batch_size))
        x, y = seq.batch(split, task, pos, torch.Generator().manual_seed(seed * 1000003 + task * 1009 + b))
        logits = model(x)
        if mask is not None:
            logits = logits + mask
        correct += int((logits.argmax(1) == y).sum())
    model.train(was)
    return correct / max(n, 1)


class EWC:
    """Elastic weight consolidation: ``lambda/2 sum_i F_i (theta - theta*)^2`` with the diagonal
    empirical Fisher of every finished task added up (anchor: the weights after the last task)."""

    def __init__(self, model, lam: float, samples: int = 200):
        self.model, self.lam, self.samples = model, float(lam), int(samples)
        self.fisher = {n: torch.zeros_like(p) for n, p in model.named_parameters() if p.requires_grad}
        self.anchor = None

    def penalty(self):
        if self.anchor is None:
            return 0.0
        total = 0.0
        for n, p in self.model.named_parameters():
            if n in self.fisher:
                total = total + (self.fisher[n] * (p - self.anchor[n]) ** 2).sum()
        return 0.5 * self.lam * total

    def end_task(self, seq: TaskSequence, task: int, seed: int) -> None:
        n = min(self.samples, seq.num_samples("train", task))
        gen = torch.Generator().manual_seed(seed)
        pick = torch.randperm(seq.num_samples("train", task), generator=gen)[:n].numpy()
        mask = seq.mask(task)
        for i in pick:                        # per-sample squared gradients of the log-likelihood
            x, y = seq.batch("train", task, [i], gen)
            logits = self.model(x)
            if mask is not None:
                logits = logits + mask
            self.model.zero_grad()
            F.cross_entropy(logits, y).backward()
            for name, p in self.model.named_parameters():
                if name in self.fisher and p.grad is not None:
                    self.fisher[name] += p.grad.detach() ** 2 / n
        self.model.zero_grad()
        self.anchor = {name: p.detach().clone() for name, p in self.model.named_parameters() if name in self.fisher}


def train_task(model, opt, seq: TaskSequence, tasks, epochs: int, batch_size: int, seed: int,
               penalty=None, after_backward=None, progress=None) -> None:
    """``epochs`` passes over the training samples of ``tasks`` (one task, or all of them jointly
    for multitask training), shuffled; each sample's loss uses its own task's head."""
    model.train()
    pairs = np.concatenate([np.stack([np.full(seq.num_samples("train", t), t), np.arange(seq.num_samples("train", t))], 1)
                            for t in tasks])
    for epoch in range(epochs):
        gen = torch.Generator().manual_seed(seed * 7919 + epoch)
        order = pairs[torch.randperm(len(pairs), generator=gen).numpy()]
        for b in range(math.ceil(len(order) / batch_size)):
            chunk = order[b * batch_size:(b + 1) * batch_size]
            xs, ys, masks = [], [], []
            for t in np.unique(chunk[:, 0]):
                sel = chunk[chunk[:, 0] == t, 1]
                x, y = seq.batch("train", int(t), sel, gen)
                xs.append(x), ys.append(y)
                m = seq.mask(int(t))
                if m is not None:
                    masks.append(m.expand(len(sel), -1))
            x, y = torch.cat(xs, 1), torch.cat(ys)
            logits = model(x)
            if masks:
                logits = logits + torch.cat(masks)
            loss = F.cross_entropy(logits, y)
            if penalty is not None:
                loss = loss + penalty()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if after_backward is not None:
                after_backward()
            opt.step()
            if progress is not None:
                progress.update(1)
