"""``neuroadapt bench hlop``: cost of HLOP on a training step, against the plain step.

Peers, all in this process, same model, input, dtype, device and threads:

* ``plain``: forward (BPTT over T steps) + loss + backward + ``SGD.step()``;
* ``hlop``: the same plus :meth:`neuroadapt.learn.hlop.HLOP.step` -- ``iterations`` (5) Oja
  updates of the new block of lateral neurons on all T*B presynaptic rows of every protected layer,
  and the projection of every weight gradient out of the old subspace (weight mode).

HLOP is put in a late-task state: the old (frozen) subspace holds ``old_fraction`` of each
layer's input dimension and a new block of ``new_fraction`` learns (the most expensive point of a
task sequence: the anti-Hebbian term and the projection grow with the old block).

``model=mlp``: the reference's PMNIST shape -- spiking MLP 784-800-10 (LIF, leaky readout), T=20,
B=64; ``old_fraction=0.6`` is the reference's final fc1 subspace (470 of 784).
``hebbian_input``: "rate" (Hebbian rows = firing rates over T, the reference's DSR variant) or
"steps" (every time step a row, the reference's BPTT variant, T times more rows).  ``model=conv``: a small spiking CNN (Conv2d 2->16, 3x3 -> LIF -> pool -> Conv2d 16->32 ->
LIF -> pool -> Linear -> LIF readout) on (T, B, 2, 16, 16); ``proj_type`` chooses weight or input
projection, ``max_rows`` caps the patches per Hebbian update (None = all, as the reference).
"""
from __future__ import annotations

from typing import Dict

import torch
from torch import nn

from neuroadapt.errors import UnsupportedOptionError

from .common import Peer, merge_config, resolve_device, timed_bench

NAME = "hlop"
DEFAULTS = {
    "model": "mlp",
    "T": 20,
    "B": 64,
    "hidden": 800,
    "old_fraction": 0.6,
    "new_fraction": 0.09,
    "iterations": 5,
    "proj_type": "weight",
    "hebbian_input": "rate",
    "max_rows": 0,            # 0 = all rows
    "warmup": 3,
    "repeats": 20,
    "device": "cpu",
    "threads": 0,
    "seed": 0,
}
QUICK = {"T": 4, "B": 8, "hidden": 64, "warmup": 1, "repeats": 3}


class _ConvSNN(nn.Module):
    def __init__(self, n_classes=10):
        super().__init__()
        import snntorch as snn

        self.c1, self.c2 = nn.Conv2d(2, 16, 3, padding=1), nn.Conv2d(16, 32, 3, padding=1)
        self.fc = nn.Linear(32 * 4 * 4, n_classes)
        self.l1, self.l2 = snn.Leaky(beta=0.9), snn.Leaky(beta=0.9)
        self.pool = nn.AvgPool2d(2)

    def forward(self, x):
        m1, m2, out = self.l1.init_leaky(), self.l2.init_leaky(), 0
        for t in range(x.shape[0]):
            s1, m1 = self.l1(self.pool(self.c1(x[t])), m1)
            s2, m2 = self.l2(self.pool(self.c2(s1)), m2)
            out = out + self.fc(s2.flatten(1))
        return out / x.shape[0]


def build(cfg: dict, device: torch.device) -> dict:
    from neuroadapt.engine.models import SpikingClassifier
    from neuroadapt.learn.hlop import HLOP

    gen = torch.Generator().manual_seed(cfg["seed"])
    T, B = cfg["T"], cfg["B"]
    torch.manual_seed(cfg["seed"])
    if cfg["model"] == "mlp":
        model = SpikingClassifier(784, 10, hidden=(cfg["hidden"],)).to(device)
        x = (torch.rand(T, B, 784, generator=gen) < 0.2).float().to(device)
        what = f"SpikingClassifier(784, 10, hidden=({cfg['hidden']},)), T={T}, B={B}"
    elif cfg["model"] == "conv":
        model = _ConvSNN().to(device)
        x = (torch.rand(T, B, 2, 16, 16, generator=gen) < 0.2).float().to(device)
        what = f"spiking CNN 2-16-32 (3x3 convs, snntorch.Leaky) + Linear, input (T={T}, B={B}, 2, 16, 16)"
    else:
        raise UnsupportedOptionError(f"model={cfg['model']!r}: choose mlp or conv")
    y = torch.randint(0, 10, (B,), generator=gen).to(device)
    h = HLOP(model, lr=1e-3, iterations=cfg["iterations"], proj_type=cfg["proj_type"],
             max_rows=cfg["max_rows"] or None, seed=cfg["seed"], hebbian_input=cfg["hebbian_input"])
    h.begin_task({n: max(1, int(cfg["old_fraction"] * s.n)) for n, s in h.subspaces.items()})
    h.end_task()
    h.begin_task({n: max(1, int(cfg["new_fraction"] * s.n)) for n, s in h.subspaces.items()})
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    loss_fn = nn.CrossEntropyLoss()

    def plain():  # HLOP's recording hooks off: plain steps must not feed the next HLOP step
        h.collecting = False
        loss_fn(model(x), y).backward()
        opt.step()

    def with_hlop():
        h.collecting = True
        loss_fn(model(x), y).backward()
        h.step()
        opt.step()

    params = list(model.parameters())
    peers = {"plain": Peer("plain", plain, params, "forward + backward + SGD step: " + what),
             "hlop": Peer("hlop", with_hlop, params, "the same + HLOP.step() (Hebbian update + projection), "
                                                     f"subspace sizes {h.sizes()}")}
    return {"peers": peers, "hlop": h, "parts": {"model": model, "x": x, "y": y, "opt": opt, "loss_fn": loss_fn}}


def check(setup: dict) -> dict:
    return {"subspace": setup["hlop"].sizes()}


def ratios(results: Dict[str, float]) -> Dict[str, float]:
    return {"hlop_over_plain": results["hlop"] / results["plain"]}


def run(config_overrides=None) -> dict:
    cfg = merge_config(DEFAULTS, config_overrides, QUICK)
    return timed_bench(NAME, cfg, resolve_device(cfg["device"]), build, check, ratios, {
        "loss": "cross-entropy on random labels", "input": "Bernoulli spikes, p=0.2",
        "target": "hlop_over_plain <= 1.3 for model=mlp (issue 6)"})
