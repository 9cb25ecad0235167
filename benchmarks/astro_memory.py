"""``neuroadapt bench astro-memory``: peak memory of one training call (forward + loss + backward)
of the AM-SU layer, the recurrent LIF layer and a parameter-matched torch.nn.LSTM (same peers and
shapes as ``neuroadapt bench astro``).  ``results_mb``: MiB allocated above the start level
(``common.peak_memory_bytes``: torch profiler memory events on CPU, the CUDA peak counter on GPU);
the largest of ``samples`` measurements after one warm-up call."""
from __future__ import annotations

from .astro import DEFAULTS as SPEED_DEFAULTS
from .astro import QUICK as SPEED_QUICK
from .astro import build, ratios
from .common import MB, MEMORY_METHOD, environment, merge_config, num_threads, peak_memory_bytes, resolve_device

NAME = "astro-memory"
DEFAULTS = {k: v for k, v in SPEED_DEFAULTS.items() if k not in ("warmup", "repeats", "latency_steps")}
DEFAULTS.update({"samples": 2, "latency_steps": 1})
QUICK = {k: v for k, v in SPEED_QUICK.items() if k in DEFAULTS}


def run(config_overrides=None) -> dict:
    cfg = merge_config(DEFAULTS, config_overrides, QUICK)
    device = resolve_device(cfg["device"])
    with num_threads(cfg["threads"]):
        setup = build(cfg, device)
        results = {}
        for name, peer in setup["peers"].items():
            peer.zero_grad()
            peer.step()                                  # warm-up
            peaks = []
            for _ in range(max(cfg["samples"], 1)):
                peer.zero_grad()
                peaks.append(peak_memory_bytes(peer.step, device))
            peer.zero_grad()
            results[name] = max(peaks) / MB
        env = environment(device)
    config = dict(cfg)
    config.update(env)
    config.update({"measure": f"peak MiB above the start level during forward + loss + backward ({MEMORY_METHOD[device.type]})",
                   "peers": {n: p.what for n, p in setup["peers"].items()}, "n_params": setup["n_params"]})
    return {"bench": NAME, "config": config, "results_mb": results, "ratios": ratios(results)}
