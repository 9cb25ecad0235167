"""The train / eval loop.

Determinism: nothing in the loop draws from a global RNG. The order of epoch ``e`` is
``randperm`` under a generator seeded with ``seed_for(seed, ORDER, e)`` (a hash); the spike encoding of
training batch ``b`` of epoch ``e`` uses a generator seeded with ``seed_for(seed, TRAIN, e, b)``
and evaluation batch ``b`` one seeded with ``seed_for(seed, EVAL, b)``. A run resumed at
(epoch, batch) therefore replays exactly the batches the uninterrupted run would have seen.
"""
from __future__ import annotations

import hashlib
import math
import os
import time

import torch
import torch.nn.functional as F

from neuroadapt.engine import distributed as dist_
from neuroadapt.errors import ConfigError, InvalidInputError

__all__ = ["seed_for", "check_finite", "resolve_device", "make_optimizer", "lr_at", "evaluate",
           "train_epoch", "record_sample", "ORDER", "TRAIN", "EVAL"]

ORDER, TRAIN, EVAL, NOISE = 1, 2, 3, 4
#: test hook: after the checkpoint of this global step is written, stop working (sleep) so a
#: test can ``kill -9`` the process at a known point. Never set it outside tests.
HANG_ENV = "NEUROADAPT_TEST_HANG_AFTER_STEP"


def seed_for(seed: int, *parts: int) -> int:
    """A 63-bit seed derived from ``seed`` and integer ``parts`` (BLAKE2b of their decimal text,
    so different tuples -- also of different lengths -- give unrelated seeds)."""
    text = ":".join(str(int(v)) for v in (seed, *parts)).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


def generator(seed: int, *parts: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed_for(seed, *parts))


def check_finite(x: torch.Tensor, where: str) -> None:
    """:class:`InvalidInputError` if ``x`` holds NaN or inf (checked before every forward pass)."""
    if x.is_floating_point() and not torch.isfinite(x).all():
        n_bad = int((~torch.isfinite(x)).sum())
        raise InvalidInputError(f"{where}: input batch contains {n_bad} NaN/inf value(s); "
                                f"clean the data (or its spike encoding) before training")


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"training.device: {name!r} is not a device; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"training.device: {name!r} requested but CUDA is not available here; use --device cpu")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    elif device.type != "cpu":
        raise ConfigError(f"training.device: {name!r} is not supported; use cpu, cuda, cuda:N or auto")
    return device


def make_optimizer(params, cfg: dict) -> torch.optim.Optimizer:
    name, lr, wd = cfg["optimizer"], float(cfg["lr"]), float(cfg["weight_decay"])
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=float(cfg["momentum"]), weight_decay=wd)
    raise ConfigError(f"training.optimizer: {name!r} is not one of adam, adamw, sgd")


def lr_at(cfg: dict, epoch: int) -> float:
    """Learning rate of (0-based) ``epoch``: constant, or cosine from lr down towards 0."""
    if cfg["scheduler"] == "cosine":
        return float(cfg["lr"]) * 0.5 * (1.0 + math.cos(math.pi * epoch / cfg["epochs"]))
    return float(cfg["lr"])


def _unwrap(model):
    return model.module if hasattr(model, "module") else model


@torch.no_grad()
def evaluate(model, dataset, split: str, batch_size: int, seed: int, device: torch.device,
             info: dist_.DistInfo = dist_.DistInfo()) -> dict:
    """Mean loss and accuracy over ``split`` (sharded over ranks, summed with all_reduce)."""
    net = _unwrap(model)
    was_training = net.training
    net.eval()
    n = dataset.num_samples(split)
    loss_sum = correct = count = 0.0
    for b in range(math.ceil(n / batch_size)):
        idx = torch.arange(b * batch_size, min(n, (b + 1) * batch_size))
        x, y = dataset.batch(split, idx, generator(seed, EVAL, b))
        check_finite(x, f"{split} batch {b}")
        pos = dist_.shard(torch.arange(len(idx)), info)
        if len(pos) == 0:
            continue
        x, y = x[:, pos].to(device), y[pos].to(device)
        logits = net(x)
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += float((logits.argmax(1) == y).sum())
        count += len(pos)
    loss_sum, correct, count = dist_.all_reduce_sum([loss_sum, correct, count], info, device)
    net.train(was_training)
    return {"loss": loss_sum / max(count, 1), "accuracy": correct / max(count, 1), "n": int(count)}


@torch.no_grad()
def record_sample(model, dataset, seed: int, device: torch.device, index: int = 0) -> dict | None:
    """Hidden-layer spikes and membrane of one test sample (as in evaluation batch 0), for plots."""
    net = _unwrap(model)
    was_training = net.training
    net.eval()
    n = dataset.num_samples("test")
    idx = torch.arange(0, min(n, max(index + 1, 1)))
    x, y = dataset.batch("test", idx, generator(seed, EVAL, 0))
    logits, trace = net(x[:, index : index + 1].to(device), record=True)
    net.train(was_training)
    if not trace.get("hidden"):  # no spiking hidden layer (e.g. an ELM model): no raster / membrane plots
        return None
    spk, mem = trace["hidden"][0]
    layer0 = net.layers[0]
    thr = getattr(getattr(layer0, "neuron", None), "threshold", None)
    return {"spikes": spk[:, 0].cpu().numpy(), "membrane": mem[:, 0].cpu().numpy(),
            "label": int(y[index]), "prediction": int(logits.argmax(1)[0]),
            "threshold": float(thr) if thr is not None and torch.as_tensor(thr).numel() == 1 else None}


def train_epoch(model, optimizer, dataset, cfg: dict, seed: int, epoch: int, start_batch: int, stats: dict,
                state: dict, device: torch.device, info: dist_.DistInfo, on_step=None, progress=None) -> dict:
    """One epoch from ``start_batch`` on. ``stats`` (loss_sum, correct, count) accumulates the epoch's
    training figures; ``state['global_step']`` counts optimizer steps. ``on_step(batch_done)`` runs
    after every step (checkpointing)."""
    n = dataset.num_samples("train")
    bs = cfg["batch_size"]
    n_batches = math.ceil(n / bs)
    order = torch.randperm(n, generator=generator(seed, ORDER, epoch))
    for group in optimizer.param_groups:
        group["lr"] = lr_at(cfg, epoch)
    model.train()
    for b in range(start_batch, n_batches):
        idx = order[b * bs : (b + 1) * bs]
        x, y = dataset.batch("train", idx, generator(seed, TRAIN, epoch, b))
        check_finite(x, f"training batch {b} of epoch {epoch + 1}")
        pos = dist_.shard(torch.arange(len(idx)), info)
        x, y = x[:, pos].to(device), y[pos].to(device)
        # the model's own randomness (dropout) is seeded per batch, so a resumed run draws the same masks
        torch.manual_seed(seed_for(seed, NOISE, epoch, b, info.rank))
        logits = model(x)
        loss_sum = F.cross_entropy(logits, y, reduction="sum", label_smoothing=float(cfg["label_smoothing"]))
        # sum over this rank's samples * world / global batch: after DDP's gradient average this
        # is exactly the gradient of the mean loss over the global batch
        loss = loss_sum * (info.world_size / len(idx))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg["grad_clip"] is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), float(cfg["grad_clip"]))
        optimizer.step()
        vals = dist_.all_reduce_sum([float(loss_sum.detach()), float((logits.argmax(1) == y).sum()), len(pos)],
                                    info, device)
        if not math.isfinite(vals[0]):
            raise InvalidInputError(f"training diverged: loss is {vals[0]} at batch {b} of epoch {epoch + 1}; "
                                    f"lower training.lr or set training.grad_clip")
        stats["loss_sum"] += vals[0]
        stats["correct"] += vals[1]
        stats["count"] += vals[2]
        state["global_step"] += 1
        if progress is not None:
            progress.update(1)
            progress.set_postfix(loss=f"{stats['loss_sum'] / max(stats['count'], 1):.3f}")
        if on_step is not None:
            on_step(b + 1, n_batches)
        _maybe_hang(state["global_step"])
    return stats


def _maybe_hang(global_step: int) -> None:
    target = os.environ.get(HANG_ENV)
    if target and int(target) == global_step:
        while True:  # pragma: no cover - killed by the test
            time.sleep(0.5)
