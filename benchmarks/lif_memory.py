"""``neuroadapt bench lif-memory``: peak memory of forward + backward of the ``lif`` layer at T=1000.

Same peers, input, weights and loss as ``neuroadapt bench lif`` (see ``benchmarks/lif.py``).
For each peer: one warm-up call, then the peak bytes allocated above the start level during one
forward + loss + backward call, measured ``samples`` times (the largest is reported):

* CPU: the allocator-level peak reconstructed from ``torch.profiler`` memory events
  (``common.cpu_peak_bytes``; validated on known allocations in tests/test_bench.py);
* CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``.

Input x, the loss weights and the parameters exist before the region and are not counted;
activations, tensors saved for backward, gradients and backward temporaries are.  As a second,
independent view, ``config.saved_for_backward_mb`` gives the bytes of distinct storages autograd
saved during the forward pass (saved-tensor hooks; misses tensors a custom Function keeps as
plain ctx attributes, so it is a lower bound for such layers).  The target is expressed as
``ratios.neuroadapt_over_snntorch`` (<= 0.5).

On CPU the benchmark first sets glibc's mmap threshold to ``mmap_threshold_mb`` (see
``common.set_glibc_mmap_threshold``): without it, Norse's backward (a full-size zero tensor per
time step from ``select_backward``) can fragment the heap until the process is killed for memory,
while torch's accounting stays at a few hundred MiB.  Default peers leave out ``norse_box``
(same issue, another ~minute at T=1000); add it with ``peers=...``.
"""
from __future__ import annotations

from typing import Dict

import torch

from .common import (
    MB,
    MEMORY_METHOD,
    environment,
    merge_config,
    num_threads,
    peak_memory_bytes,
    resolve_device,
    saved_tensor_bytes,
    set_glibc_mmap_threshold,
)
from .lif import build, check

NAME = "lif-memory"
DEFAULTS = {
    "T": 1000,
    "B": 32,
    "in_features": 700,
    "out_features": 256,
    "beta": 0.9,
    "threshold": 1.0,
    "input_rate": 0.1,
    "weight_gain": 3.0,
    "samples": 2,
    "saved_bytes": True,   # also report the saved-for-backward bytes (secondary measure)
    "mmap_threshold_mb": 1.0,  # CPU: glibc serves blocks >= this from mmap (0 = leave glibc alone)
    "device": "cpu",
    "threads": 0,
    "seed": 0,
    "peers": "neuroadapt,snntorch,norse,floor",  # norse_box also available (slow at T=1000)
}
QUICK = {"T": 20, "samples": 1, "mmap_threshold_mb": 0.0}


def run(config_overrides=None) -> dict:
    cfg = merge_config(DEFAULTS, config_overrides, QUICK)
    device = resolve_device(cfg["device"])
    torch.manual_seed(cfg["seed"])
    mmap_set = device.type == "cpu" and set_glibc_mmap_threshold(int(cfg["mmap_threshold_mb"] * MB))
    samples: Dict[str, list] = {}
    saved: Dict[str, float] = {}
    with num_threads(cfg["threads"]):
        setup = build(cfg, device)
        checks = check(setup)
        for name, peer in setup["peers"].items():
            peer.zero_grad()
            peer.step()  # warm-up: lazy initialisation (kernel builds, library scratch) is not counted
            samples[name] = []
            for _ in range(max(cfg["samples"], 1)):
                peer.zero_grad()
                samples[name].append(peak_memory_bytes(peer.step, device) / MB)
            if cfg["saved_bytes"]:
                peer.zero_grad()
                saved[name] = saved_tensor_bytes(peer.step, exclude=setup["preexisting"]) / MB
            peer.zero_grad()
        env = environment(device)
    results = {name: max(v) for name, v in samples.items()}
    na = results["neuroadapt"]
    ratios = {}
    if "snntorch" in results:
        ratios["neuroadapt_over_snntorch"] = na / results["snntorch"]
    ratios.update({f"{p}_over_neuroadapt": results[p] / na for p in results if p not in ("neuroadapt", "floor")})
    if "floor" in results:
        ratios["neuroadapt_over_floor"] = na / results["floor"]
    T, B, n_in, n_out = cfg["T"], cfg["B"], cfg["in_features"], cfg["out_features"]
    config = dict(cfg)
    config.update(env)
    config.update({
        "dtype": "float32",
        "method": MEMORY_METHOD[device.type],
        "unit": "MiB (2**20 bytes), peak above the level at the start of forward+backward",
        "samples_mb": samples,
        "samples_agree": all(max(v) - min(v) <= 0.01 * max(v) + 1e-6 for v in samples.values()),
        "not_counted": "input x, loss weights, parameters (allocated before the region)",
        "glibc_mmap_threshold_set": bool(mmap_set),
        "reference_sizes_mb": {
            "input x (T,B,in) float32": T * B * n_in * 4 / MB,
            "one (T,B,out) float32 tensor": T * B * n_out * 4 / MB,
            "weight gradient": (n_in + 1) * n_out * 4 / MB,
        },
        "peers": {p.name: p.what for p in setup["peers"].values()},
    })
    if cfg["saved_bytes"]:
        config["saved_for_backward_mb"] = saved
        config["saved_for_backward_method"] = (
            "torch.autograd.graph.saved_tensors_hooks: distinct storages saved during forward, "
            "pre-existing input/parameters excluded; misses ctx attributes of custom Functions")
    config.update(checks)
    return {"bench": NAME, "config": config, "results_mb": results, "ratios": ratios}
