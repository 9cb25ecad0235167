"""``neuroadapt bench astro``: the AM-SU layer against the recurrent LIF layer and torch.nn.LSTM.

Peers, in this process, on the same input spikes (T, B, in_features), float32, same threads:

* ``neuroadapt``: ``neuroadapt.nn.AMSU`` (reduced astrocyte, recurrent) + ``LIReadout``;
* ``lif``: ``neuroadapt.nn.LIFLayer`` (recurrent leaky, fused scan) + ``LIReadout``;
* ``lstm``: ``torch.nn.LSTM`` with its hidden size chosen so its parameter count matches the
  AM-SU's (as in the task recipes) + ``LIReadout``.

``results_ms``: median ms of one training call (forward + loss + backward) on the batch.  The
config also carries, per peer, ``throughput_samples_per_s`` (B / that time), and
``latency_ms_per_step``: median ms of one inference step (no autograd, batch 1, the module's
step call: ``AMSU.step``, ``fc`` + ``RLeaky`` step, ``LSTM`` on one step with its (h, c)).
Peak memory is ``neuroadapt bench astro-memory``.
"""
from __future__ import annotations

import math
from typing import Dict

import torch
import torch.nn as nn

from neuroadapt.errors import UnsupportedOptionError

from .common import Peer, merge_config, num_threads, resolve_device, summarize, time_interleaved, timed_bench

NAME = "astro"
ALL_PEERS = ("neuroadapt", "lif", "lstm")
DEFAULTS = {"T": 100, "B": 32, "in_features": 700, "hidden": 128, "n_outputs": 20, "n_astro": 16,
            "input_rate": 0.05, "latency_steps": 200, "warmup": 1, "repeats": 5, "device": "cpu", "threads": 0,
            "seed": 0, "peers": ",".join(ALL_PEERS)}
QUICK = {"T": 10, "B": 4, "in_features": 50, "hidden": 16, "latency_steps": 10, "repeats": 2}


def lstm_hidden_matching(n_params: int, n_in: int, n_out: int) -> int:
    """Hidden size h of LSTM(n_in, h) + Linear readout(h, n_out) with about ``n_params`` parameters."""
    a, b, c = 4, 4 * n_in + 8 + n_out, n_out - n_params           # 4h^2 + (4 n_in + 8 + n_out) h + n_out
    return max(1, round((-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)))


def _count(*mods) -> int:
    return sum(p.numel() for m in mods for p in m.parameters() if p.requires_grad)


def build(cfg: dict, device: torch.device) -> dict:
    from neuroadapt.nn import AMSU, LIFLayer, LIReadout

    wanted = [p.strip() for p in str(cfg["peers"]).split(",") if p.strip()]
    if any(p not in ALL_PEERS for p in wanted) or "neuroadapt" not in wanted:
        raise UnsupportedOptionError(f"peers={cfg['peers']!r}: choose from {', '.join(ALL_PEERS)} (neuroadapt required)")
    T, B, n_in, H, n_out = cfg["T"], cfg["B"], cfg["in_features"], cfg["hidden"], cfg["n_outputs"]
    gen = torch.Generator().manual_seed(cfg["seed"])
    x = (torch.rand(T, B, n_in, generator=gen) < cfg["input_rate"]).float().to(device)
    x1 = (torch.rand(cfg["latency_steps"], 1, n_in, generator=gen) < cfg["input_rate"]).float().to(device)
    w_out = torch.randn(T, B, n_out, generator=gen).to(device)
    torch.manual_seed(cfg["seed"])
    amsu = AMSU(n_in, H, n_astro=min(cfg["n_astro"], n_in), recurrent=True, dt=0.01).to(device)
    mods = {"neuroadapt": (amsu, LIReadout(H, n_out).to(device))}
    if "lif" in wanted:
        mods["lif"] = (LIFLayer(n_in, H, recurrent=True, learn_beta=True).to(device), LIReadout(H, n_out).to(device))
    if "lstm" in wanted:
        h = lstm_hidden_matching(_count(*mods["neuroadapt"]), n_in, n_out)
        mods["lstm"] = (nn.LSTM(n_in, h).to(device), LIReadout(h, n_out).to(device))
    fwd = {"neuroadapt": lambda: mods["neuroadapt"][1](amsu(x)),
           "lif": lambda: mods["lif"][1](mods["lif"][0](x)),
           "lstm": lambda: mods["lstm"][1](mods["lstm"][0](x)[0])}

    def train_step(name):
        def step():
            (fwd[name]() * w_out).sum().backward()
        return step

    def infer(name):
        layer = mods[name][0]

        @torch.no_grad()
        def run():
            if name == "neuroadapt":
                state = amsu.init_state(1, x1.dtype, x1.device)
                for t in range(x1.shape[0]):
                    _, state = amsu.step(x1[t], state)
            elif name == "lif":
                spk = mem = None
                for t in range(x1.shape[0]):
                    spk, mem = layer.neuron(layer.fc(x1[t]), spk, mem)
            else:
                hc = None
                for t in range(x1.shape[0]):
                    _, hc = layer(x1[t:t + 1], hc)
        return run

    what = {n: f"{type(m[0]).__name__} + LIReadout, {_count(*m)} parameters" for n, m in mods.items()}
    peers = {n: Peer(n, train_step(n), [p for m in mods[n] for p in m.parameters()], what[n]) for n in mods}
    latency = {n: Peer(n, infer(n), [], what[n]) for n in mods}
    return {"peers": peers, "latency": latency, "cfg": cfg, "device": device,
            "n_params": {n: _count(*m) for n, m in mods.items()}}


def check(setup: dict) -> dict:
    """Per-step latency and throughput (the timed training calls follow in timed_bench)."""
    cfg = setup["cfg"]
    with num_threads(cfg["threads"]):
        lat = time_interleaved(list(setup["latency"].values()), setup["device"], cfg["warmup"], cfg["repeats"])
    return {"latency_ms_per_step": {n: summarize(v)["median"] / cfg["latency_steps"] for n, v in lat.items()},
            "n_params": setup["n_params"]}


def ratios(results: Dict[str, float]) -> Dict[str, float]:
    na = results["neuroadapt"]
    return {f"{p}_over_neuroadapt": results[p] / na for p in results if p != "neuroadapt"}


def run(config_overrides=None) -> dict:
    cfg = merge_config(DEFAULTS, config_overrides, QUICK)
    out = timed_bench(NAME, cfg, resolve_device(cfg["device"]), build, check, ratios, {
        "loss": "sum(readout membrane * fixed randn(T, B, n_outputs))",
        "input": f"Bernoulli spikes, p={cfg['input_rate']}"})
    out["config"]["throughput_samples_per_s"] = {n: cfg["B"] / (ms / 1e3) for n, ms in out["results_ms"].items()}
    return out
