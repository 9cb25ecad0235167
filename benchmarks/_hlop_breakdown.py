"""Where the time of ``neuroadapt bench hlop`` goes: the HLOP peer split into its parts.

Not a benchmark of its own (the leading underscore keeps it out of ``neuroadapt bench``): it
builds the bench's setup (same model, input, late-task state) and times, interleaved, the plain
step and the HLOP step cut into forward + backward (hooks recording), ``hebbian_step``,
``project_gradients`` and the SGD step. Prints the median and the fastest of the timed steps in
ms (on a loaded machine the fastest is the steadier estimate of a part's cost)::

    PYTHONPATH=$PWD nice -n 10 python benchmarks/_hlop_breakdown.py            # MLP, bench defaults
    PYTHONPATH=$PWD nice -n 10 python benchmarks/_hlop_breakdown.py model=conv steps=20
"""
from __future__ import annotations

import gc
import statistics
import sys
import time

import torch


def main(argv=None) -> dict:
    from neuroadapt.engine.bench import load_module, parse_overrides

    hb = load_module("hlop")
    over = parse_overrides(",".join(argv if argv is not None else sys.argv[1:])) or {}
    steps = int(over.pop("steps", 40))
    cfg = hb.merge_config(hb.DEFAULTS, over, hb.QUICK)
    torch.set_num_threads(int(cfg["threads"]) or 1)
    setup = hb.build(cfg, hb.resolve_device(cfg["device"]))
    h, parts = setup["hlop"], setup["parts"]
    model, x, y, opt, loss_fn = parts["model"], parts["x"], parts["y"], parts["opt"], parts["loss_fn"]
    names = ("plain", "fwd_bwd", "hebbian", "projection", "sgd", "hlop")
    times = {k: [] for k in names}
    for i in range(steps + 5):
        for peer in ("plain", "hlop"):
            for p in model.parameters():
                p.grad = None
            gc.collect()
            gc.disable()
            t0 = time.perf_counter()
            if peer == "plain":
                h.collecting = False
                loss_fn(model(x), y).backward()
                opt.step()
                stamps = {"plain": time.perf_counter() - t0}
            else:
                h.collecting = True
                loss_fn(model(x), y).backward()
                t1 = time.perf_counter()
                h.hebbian_step()
                t2 = time.perf_counter()
                h.project_gradients()
                h._clear()
                t3 = time.perf_counter()
                opt.step()
                t4 = time.perf_counter()
                stamps = {"fwd_bwd": t1 - t0, "hebbian": t2 - t1, "projection": t3 - t2, "sgd": t4 - t3,
                          "hlop": t4 - t0}
            gc.enable()
            if i >= 5:                       # warm-up
                for k, v in stamps.items():
                    times[k].append(v * 1e3)
    out = {"median": {k: statistics.median(v) for k, v in times.items()},
           "fastest": {k: min(v) for k, v in times.items()}}
    for label, row in out.items():
        print(f"{label:>7}: " + " ".join(f"{k}={row[k]:.2f}" for k in names)
              + f"  hlop/plain={row['hlop'] / row['plain']:.3f}")
    return out


if __name__ == "__main__":
    main()
