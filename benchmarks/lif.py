"""``neuroadapt bench lif``: speed of one Linear(700->256) + LIF layer, forward + backward.

Peers, all in this process, on the same input, weights, shapes, dtype, device and threads:

* ``neuroadapt``: ``neuroadapt.nn.LIFLayer(700, 256, neuron="leaky", beta=0.9)`` on x (T, B, 700).
* ``snntorch``: ``nn.Linear`` + ``snntorch.Leaky(beta=0.9)`` stepped in a Python loop over T,
  the Linear inside the loop (as in snnTorch's tutorials).
* ``norse``: ``nn.Linear`` over the whole (T*B, 700) sequence, then ``norse.torch.LIF``, Norse's
  sequence module (its own T-step loop over ``lif_feed_forward_step``).  Parameters chosen to be
  a Leaky neuron: dt=1e-3, tau_mem_inv=(1-beta)/dt (decay 0.9 per step), tau_syn_inv=1/dt (the
  synaptic current is used once and decays to zero: no synaptic filter), v_th=1, v_leak=v_reset=0,
  SuperSpike surrogate; the Linear's weights are those of the others times 1/(1-beta), so the
  membrane receives the same input.  Norse resets to zero (reset_value is fixed in LIF).
* ``norse_box``: the same projection, then ``Lift(LIFBoxCell)``: Norse's current-free LIF cell
  (the model closest to snnTorch's Leaky: one state, reset by subtraction) lifted over T by
  Norse's ``Lift``; Norse 1.1 has no sequence module for it.
* ``floor``: ``nn.Linear(700, 256)`` on (T*B, 700) alone: the matrix multiply every peer pays.

Loss: sum(output * fixed random weights).  Before timing, the benchmark checks that neuroadapt
and snnTorch produce identical spikes (``spikes_identical``) and close weight gradients.
"""
from __future__ import annotations

import math
from typing import Dict

import torch
import torch.nn as nn

from neuroadapt.errors import UnsupportedOptionError

from .common import Peer, merge_config, resolve_device, timed_bench

NAME = "lif"
ALL_PEERS = ("neuroadapt", "snntorch", "norse", "norse_box", "floor")
DEFAULTS = {
    "T": 100,
    "B": 32,
    "in_features": 700,
    "out_features": 256,
    "beta": 0.9,
    "threshold": 1.0,
    "input_rate": 0.1,     # Bernoulli spike probability of each input channel and step
    "weight_gain": 3.0,    # W ~ U(-g, g) / sqrt(in_features): a few % of output neurons fire
    "warmup": 3,
    "repeats": 20,
    "device": "cpu",
    "threads": 0,          # 0 = torch's current setting
    "seed": 0,
    "peers": ",".join(ALL_PEERS),
}
QUICK = {"T": 10, "warmup": 1, "repeats": 2}
NORSE_DT = 1e-3


def _linear_params(layer: nn.Module, n_in: int, n_out: int):
    """The (weight, bias) of the input projection of a neuroadapt layer."""
    for mod in layer.modules():
        if isinstance(mod, nn.Linear) and mod.in_features == n_in and mod.out_features == n_out:
            return mod.weight, mod.bias
    weight = bias = None
    for name, p in layer.named_parameters():
        if weight is None and tuple(p.shape) == (n_out, n_in):
            weight = p
        elif bias is None and tuple(p.shape) == (n_out,) and "bias" in name:
            bias = p
    if weight is None:
        raise RuntimeError(f"cannot find the ({n_out}, {n_in}) input weight of {type(layer).__name__}")
    return weight, bias


def _copy_into(linear: nn.Linear, weight: torch.Tensor, bias, scale: float = 1.0) -> None:
    with torch.no_grad():
        linear.weight.copy_(weight * scale)
        if bias is not None:
            linear.bias.copy_(bias * scale)
        else:
            linear.bias.zero_()


def build(cfg: dict, device: torch.device) -> dict:
    """Everything the speed and memory benchmarks share: inputs, loss weights and one
    :class:`Peer` per contender, all with the same weights."""
    wanted = [p.strip() for p in str(cfg["peers"]).split(",") if p.strip()]
    unknown = [p for p in wanted if p not in ALL_PEERS]
    if unknown or "neuroadapt" not in wanted:
        raise UnsupportedOptionError(
            f"peers={cfg['peers']!r}: choose from {', '.join(ALL_PEERS)} (neuroadapt is required)"
        )
    T, B, n_in, n_out = cfg["T"], cfg["B"], cfg["in_features"], cfg["out_features"]
    beta, thr = cfg["beta"], cfg["threshold"]
    gen = torch.Generator().manual_seed(cfg["seed"])
    x = (torch.rand(T, B, n_in, generator=gen) < cfg["input_rate"]).float().to(device)
    w_out = torch.randn(T, B, n_out, generator=gen).to(device)
    bound = 1.0 / math.sqrt(n_in)
    weight = ((torch.rand(n_out, n_in, generator=gen) * 2 - 1) * bound * cfg["weight_gain"]).to(device)
    bias = ((torch.rand(n_out, generator=gen) * 2 - 1) * bound).to(device)

    peers: Dict[str, Peer] = {}
    forwards = {}

    from neuroadapt.nn import LIFLayer

    na = LIFLayer(n_in, n_out, neuron="leaky", beta=beta, threshold=thr, reset_mechanism="subtract").to(device)
    na_w, na_b = _linear_params(na, n_in, n_out)
    with torch.no_grad():
        na_w.copy_(weight)
        if na_b is not None:
            na_b.copy_(bias)
    forwards["neuroadapt"] = lambda: na(x)
    what = {"neuroadapt": f"neuroadapt.nn.LIFLayer({n_in}, {n_out}, neuron='leaky', beta={beta})"}

    if "snntorch" in wanted:
        import snntorch as snn

        fc_s = nn.Linear(n_in, n_out).to(device)
        _copy_into(fc_s, weight, bias)
        lif_s = snn.Leaky(beta=beta, threshold=thr, reset_mechanism="subtract").to(device)

        def fwd_snntorch():
            mem = lif_s.reset_mem()
            spikes = []
            for t in range(T):
                spk, mem = lif_s(fc_s(x[t]), mem)
                spikes.append(spk)
            return torch.stack(spikes)

        forwards["snntorch"] = fwd_snntorch
        what["snntorch"] = f"nn.Linear + snntorch.Leaky(beta={beta}) stepped over T in Python"

    if "norse" in wanted or "norse_box" in wanted:
        from norse.torch import LIF, LIFParameters
        from norse.torch.functional.lif_box import LIFBoxParameters
        from norse.torch.functional.reset import reset_subtract
        from norse.torch.module.lif_box import LIFBoxCell
        from norse.torch.module.lift import Lift

        gain = 1.0 / (1.0 - beta)  # Norse integrates dt*tau_mem_inv*I = (1-beta)*I per step
        fc_n = nn.Linear(n_in, n_out).to(device)
        _copy_into(fc_n, weight, bias, scale=gain)
        t_ = lambda v: torch.as_tensor(v, device=device)  # noqa: E731
        if "norse" in wanted:
            p = LIFParameters(tau_syn_inv=t_(1.0 / NORSE_DT), tau_mem_inv=t_((1.0 - beta) / NORSE_DT),
                              v_leak=t_(0.0), v_th=t_(thr), v_reset=t_(0.0), method="super", alpha=t_(100.0))
            lif_n = LIF(p, dt=NORSE_DT).to(device)
            forwards["norse"] = lambda: lif_n(fc_n(x.reshape(T * B, n_in)).reshape(T, B, n_out))[0]
            what["norse"] = ("nn.Linear on (T*B, in) + norse.torch.LIF (sequence module), dt=1e-3, "
                             f"tau_mem_inv={(1 - beta) / NORSE_DT:g}, tau_syn_inv={1 / NORSE_DT:g}, "
                             f"v_th={thr}, v_reset=0, reset to zero, weights x{gain:g}")
        if "norse_box" in wanted:
            pb = LIFBoxParameters(tau_mem_inv=t_((1.0 - beta) / NORSE_DT), v_leak=t_(0.0), v_th=t_(thr),
                                  v_reset=t_(0.0), method="super", alpha=t_(100.0), reset_method=reset_subtract)
            lif_b = Lift(LIFBoxCell(pb, dt=NORSE_DT)).to(device)
            forwards["norse_box"] = lambda: lif_b(fc_n(x.reshape(T * B, n_in)).reshape(T, B, n_out))[0]
            what["norse_box"] = ("nn.Linear on (T*B, in) + norse Lift(LIFBoxCell), dt=1e-3, "
                                 f"tau_mem_inv={(1 - beta) / NORSE_DT:g}, reset_subtract, weights x{gain:g}")

    if "floor" in wanted:
        fc_f = nn.Linear(n_in, n_out).to(device)
        _copy_into(fc_f, weight, bias)
        forwards["floor"] = lambda: fc_f(x.reshape(T * B, n_in)).reshape(T, B, n_out)
        what["floor"] = "nn.Linear on (T*B, in) alone, no neuron"

    params = {"neuroadapt": list(na.parameters())}
    if "snntorch" in forwards:
        params["snntorch"] = list(fc_s.parameters()) + list(lif_s.parameters())
    for name in ("norse", "norse_box"):
        if name in forwards:
            params[name] = list(fc_n.parameters())
    if "floor" in forwards:
        params["floor"] = list(fc_f.parameters())

    def make_step(fwd):
        def step():
            (fwd() * w_out).sum().backward()
        return step

    for name in [p for p in ALL_PEERS if p in forwards]:
        peers[name] = Peer(name, make_step(forwards[name]), params[name], what[name])
    weights = {"neuroadapt": na_w}
    if "snntorch" in forwards:
        weights["snntorch"] = fc_s.weight
    return {"x": x, "w_out": w_out, "peers": peers, "forwards": forwards, "weights": weights,
            "fc_s": fc_s if "snntorch" in forwards else None,
            "preexisting": [x, w_out] + [p for ps in params.values() for p in ps]}


def check(setup: dict) -> dict:
    """Is everyone computing the same thing?  Spikes of neuroadapt vs snnTorch (must be
    identical), weight gradients, and how far Norse's (differently defined) neurons agree."""
    fwd, peers, out = setup["forwards"], setup["peers"], {}
    with torch.no_grad():
        spikes = {name: f().detach() for name, f in fwd.items() if name != "floor"}
    ref = spikes["neuroadapt"]
    out["output_spike_rate"] = float(ref.float().mean())
    if "snntorch" in spikes:
        mism = int((spikes["snntorch"] != ref).sum())
        out["spikes_identical"] = mism == 0
        out["spike_mismatches"] = mism
        x, fc_s = setup["x"], setup["fc_s"]
        with torch.no_grad():  # one GEMM over T*B vs T GEMMs of B rows: same bits?
            big = fc_s(x.reshape(-1, x.shape[-1])).reshape(x.shape[0], x.shape[1], -1)
            per_step = torch.stack([fc_s(x[t]) for t in range(x.shape[0])])
        out["currents_identical"] = bool(torch.equal(big, per_step))
        grads = {}
        for name in ("neuroadapt", "snntorch"):
            peers[name].zero_grad()
            peers[name].step()
            grads[name] = setup["weights"][name].grad.detach().clone()
            peers[name].zero_grad()
        scale = float(grads["snntorch"].abs().max()) or 1.0
        out["weight_grad_max_rel_diff"] = float((grads["neuroadapt"] - grads["snntorch"]).abs().max()) / scale
        for name in ("norse", "norse_box"):
            if name in spikes:
                out[f"{name}_spike_agreement_with_snntorch"] = float((spikes[name] == spikes["snntorch"]).float().mean())
    return out


def ratios(results: Dict[str, float]) -> Dict[str, float]:
    na = results["neuroadapt"]
    r = {f"{p}_over_neuroadapt": results[p] / na for p in results if p not in ("neuroadapt", "floor")}
    if "floor" in results:
        r["neuroadapt_over_floor"] = na / results["floor"]
    return r


def run(config_overrides=None) -> dict:
    cfg = merge_config(DEFAULTS, config_overrides, QUICK)
    torch.manual_seed(cfg["seed"])
    result = timed_bench(NAME, cfg, resolve_device(cfg["device"]), build, check, ratios, {
        "loss": "sum(output * fixed randn(T, B, out))",
        "input": f"Bernoulli spikes, p={cfg['input_rate']}",
    })
    if "norse" in result["results_ms"] or "norse_box" in result["results_ms"]:
        result["config"]["norse_note"] = (
            "Norse's sequence modules index input[t] in a Python loop; each index costs a full (T,B,N) "
            "zero tensor in backward (select_backward): O(T^2) memory traffic")
    return result
