"""``neuroadapt bench elm``: speed of one ELM neuron on an SHD-shaped batch, forward + backward.

Peers, all in this process, on the same input, shapes, dtype, device and threads:

* ``neuroadapt``: ``neuroadapt.nn.ELM(700, 20, n_memory=100)`` on x (T, B, 700): one GEMM of
  all T*B input rows with ``W_in Q``, one linear scan for the synaptic traces (already through
  ``W_in``), and the fused memory loop with its hand-written backward.
* ``stepwise``: the same equations written step by step, as the authors' reference code does
  (per-synapse traces on all 700 synapses, ``cat([s_t, κ_m m])``, the MLP's ``nn.Linear`` layers,
  the scaled tanh, the memory update and the readout inside a Python loop over T; autograd
  records every step).  It uses the very parameter tensors of the ``neuroadapt`` module, and
  the benchmark checks that both give the same outputs and gradients before timing.
* ``neuroadapt_blas``: the ``neuroadapt`` module with the float32 products of the memory loop
  through the BLAS routine instead of the packed-weight kernel (``elm_scan.USE_PACKED = False``
  during its step; the same module where that kernel is not built): what the packing gains.
* ``lstm``: ``torch.nn.LSTM(700, 100)`` (hidden state of the ELM's memory size) + a
  ``Linear(100, 20)`` readout over the whole sequence (cuDNN / oneDNN kernels).

Loss: sum(output * fixed random weights).
"""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn as nn

from neuroadapt.errors import UnsupportedOptionError

from .common import Peer, merge_config, resolve_device, timed_bench

NAME = "elm"
ALL_PEERS = ("neuroadapt", "neuroadapt_blas", "stepwise", "lstm")
DEFAULTS = {
    "T": 250,
    "B": 32,
    "in_features": 700,
    "n_memory": 100,
    "n_outputs": 20,
    "input_rate": 0.05,    # Bernoulli spike probability of each input channel and step
    "version": "v1",
    "warmup": 2,
    "repeats": 10,
    "device": "cpu",
    "threads": 0,          # 0 = torch's current setting
    "seed": 0,
    "peers": ",".join(ALL_PEERS),
}
QUICK = {"T": 12, "B": 4, "warmup": 1, "repeats": 2}


def stepwise_forward(elm, x: torch.Tensor) -> torch.Tensor:
    """The ELM equations step by step (module docstring), on ``elm``'s own parameters."""
    T, B, _ = x.shape
    route, w_s, k_s, k_m, gain = elm.route, elm.w_s, elm.kappa_s, elm.kappa_m, elm.gain
    branch = torch.arange(route.numel(), device=x.device) // elm.synapses_per_branch
    act = {"relu": torch.relu, "silu": nn.functional.silu, "tanh": torch.tanh}[elm.mlp_activation]
    s = torch.zeros(B, route.numel(), dtype=x.dtype, device=x.device)
    m = torch.zeros(B, elm.n_memory, dtype=x.dtype, device=x.device)
    ys = []
    for t in range(T):
        s = k_s * s + w_s * x[t][:, route]
        b = s if elm.routing is None else torch.zeros(B, elm.n_branches, dtype=x.dtype,
                                                      device=x.device).index_add(1, branch, s)
        h = torch.cat([b, k_m * m], dim=1)
        for layer in elm.mlp[:-1]:
            h = act(layer(h))
        m = k_m * m + gain * (1.7159 * torch.tanh(2.0 / 3.0 * elm.mlp[-1](h)))
        ys.append(elm.readout(m))
    return torch.stack(ys)


def build(cfg: dict, device: torch.device) -> dict:
    wanted = [p.strip() for p in str(cfg["peers"]).split(",") if p.strip()]
    unknown = [p for p in wanted if p not in ALL_PEERS]
    if unknown or "neuroadapt" not in wanted:
        raise UnsupportedOptionError(f"peers={cfg['peers']!r}: choose from {', '.join(ALL_PEERS)} "
                                     "(neuroadapt is required)")
    from neuroadapt.nn import ELM

    T, B, n_in, d_m, d_o = cfg["T"], cfg["B"], cfg["in_features"], cfg["n_memory"], cfg["n_outputs"]
    gen = torch.Generator().manual_seed(cfg["seed"])
    x = (torch.rand(T, B, n_in, generator=gen) < cfg["input_rate"]).float().to(device)
    w_out = torch.randn(T, B, d_o, generator=gen).to(device)
    torch.manual_seed(cfg["seed"])
    elm = ELM(n_in, d_o, n_memory=d_m, version=cfg["version"]).to(device)
    forwards = {"neuroadapt": lambda: elm(x)[0]}
    params = {"neuroadapt": list(elm.parameters())}
    what = {"neuroadapt": f"neuroadapt.nn.ELM({n_in}, {d_o}, n_memory={d_m}, version={cfg['version']!r}), "
                          f"{sum(p.numel() for p in elm.parameters())} parameters"}
    if "stepwise" in wanted:
        forwards["stepwise"] = lambda: stepwise_forward(elm, x)
        params["stepwise"] = params["neuroadapt"]
        what["stepwise"] = "the same equations and parameters, stepped over T in Python (autograd per step)"
    if "lstm" in wanted:
        lstm = nn.LSTM(n_in, d_m).to(device)
        head = nn.Linear(d_m, d_o).to(device)
        forwards["lstm"] = lambda: head(lstm(x)[0])
        params["lstm"] = list(lstm.parameters()) + list(head.parameters())
        what["lstm"] = (f"torch.nn.LSTM({n_in}, {d_m}) + Linear({d_m}, {d_o}), "
                        f"{sum(p.numel() for p in params['lstm'])} parameters")

    def make_step(fwd, packed=True):
        from neuroadapt.core import elm_scan

        def step():
            keep, elm_scan.USE_PACKED = elm_scan.USE_PACKED, packed
            try:
                (fwd() * w_out).sum().backward()
            finally:
                elm_scan.USE_PACKED = keep
        return step

    if "neuroadapt_blas" in wanted:
        forwards["neuroadapt_blas"], params["neuroadapt_blas"] = forwards["neuroadapt"], params["neuroadapt"]
        what["neuroadapt_blas"] = "the same module, float32 loop products through the BLAS routine (USE_PACKED=False)"
    peers = {name: Peer(name, make_step(forwards[name], packed=name != "neuroadapt_blas"), params[name], what[name])
             for name in ALL_PEERS if name in forwards}
    return {"x": x, "elm": elm, "peers": peers, "forwards": forwards, "w_out": w_out}


def check(setup: dict) -> dict:
    """Do ``neuroadapt`` and ``stepwise`` compute the same thing?  Outputs and gradients."""
    out = {}
    if "stepwise" not in setup["forwards"]:
        return out
    elm, w_out = setup["elm"], setup["w_out"]
    grads, ys = {}, {}
    for name in ("neuroadapt", "stepwise"):
        elm.zero_grad(set_to_none=True)
        y = setup["forwards"][name]()
        (y * w_out).sum().backward()
        ys[name] = y.detach()
        grads[name] = [p.grad.detach().clone() for p in elm.parameters()]
    elm.zero_grad(set_to_none=True)
    scale = float(ys["stepwise"].abs().max()) or 1.0
    out["output_max_rel_diff"] = float((ys["neuroadapt"] - ys["stepwise"]).abs().max()) / scale
    out["grad_max_rel_diff"] = max(float((a - b).abs().max()) / (float(b.abs().max()) or 1.0)
                                   for a, b in zip(grads["neuroadapt"], grads["stepwise"]))
    # float32, 250 steps: rounding differences stay well below 1e-3 of the largest value
    out["outputs_match"] = bool(out["output_max_rel_diff"] < 1e-3 and out["grad_max_rel_diff"] < 1e-3)
    return out


def ratios(results: Dict[str, float]) -> Dict[str, float]:
    na = results["neuroadapt"]
    return {f"{p}_over_neuroadapt": results[p] / na for p in results if p != "neuroadapt"}


def run(config_overrides=None) -> dict:
    cfg = merge_config(DEFAULTS, config_overrides, QUICK)
    return timed_bench(NAME, cfg, resolve_device(cfg["device"]), build, check, ratios, {
        "loss": "sum(output * fixed randn(T, B, n_outputs))",
        "input": f"Bernoulli spikes, p={cfg['input_rate']}",
    })
