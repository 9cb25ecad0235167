"""``neuroadapt bench nir``: NIR parity with Norse, and the speed of running a NIR graph.

Parity (``config["parity"]``): four snnTorch networks (``Leaky`` reset-to-zero -> NIR ``LIF``;
``Synaptic`` reset-to-zero with ``reset_delay=False`` -> ``CubaLIF``; ``RLeaky`` -> ``LIF`` with a
recurrent cycle; a two-layer convolutional ``LIF`` net) are exported with
``neuroadapt.export.nir.to_nir`` and run, on the same Bernoulli input, by the source model
(snnTorch, stepped), by ``neuroadapt.export.nir.from_nir`` and by Norse's own
``norse.torch.from_nir``.  Reported per network: spikes of the source and entries that differ
(``spike_mismatches``) for each importer; ``spikes_identical`` is False if any differs.

Speed (``results_ms``): one forward pass over ``T`` steps of the first (LIF) network's graph:
``neuroadapt`` = ``from_nir(graph)(x)`` (a Python loop over steps and nodes), ``norse`` = Norse's
``GraphExecutor`` stepped ``T`` times; median ms per call, interleaved, float32, no gradients.
"""
from __future__ import annotations

import logging
import warnings

import torch
import torch.nn as nn

from .common import Peer, environment, merge_config, num_threads, resolve_device, summarize, time_interleaved

NAME = "nir"
DEFAULTS = {"T": 200, "B": 32, "in_features": 200, "hidden": 128, "out_features": 20, "input_rate": 0.2,
            "dt": 1e-3, "warmup": 2, "repeats": 10, "threads": 0, "seed": 0, "device": "cpu"}
QUICK = {"T": 20, "B": 4, "repeats": 2, "warmup": 1}


def networks(cfg: dict) -> dict:
    import snntorch as snn

    n_in, h, n_out = cfg["in_features"], cfg["hidden"], cfg["out_features"]
    kw = dict(reset_mechanism="zero", init_hidden=True)
    return {
        "LIF": (nn.Sequential(nn.Linear(n_in, h), snn.Leaky(0.9, threshold=0.5, **kw), nn.Linear(h, n_out),
                              snn.Leaky(0.8, threshold=0.5, **kw)), (n_in,)),
        "CubaLIF": (nn.Sequential(nn.Linear(n_in, h), snn.Synaptic(0.8, 0.9, threshold=0.5, reset_delay=False, **kw),
                                  nn.Linear(h, n_out), snn.Synaptic(0.7, 0.8, threshold=0.5, reset_delay=False, **kw)),
                    (n_in,)),
        "recurrent LIF": (nn.Sequential(nn.Linear(n_in, h), snn.RLeaky(0.9, linear_features=h, threshold=0.5,
                                                                       reset_delay=False, **kw),
                                        nn.Linear(h, n_out), snn.Leaky(0.8, threshold=0.5, **kw)), (n_in,)),
        "conv LIF": (nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), snn.Leaky(0.9, threshold=0.5, **kw),
                                   nn.Conv2d(8, 8, 3, stride=2), snn.Leaky(0.8, threshold=0.5, **kw)), (2, 16, 16)),
    }


def run(config_overrides=None) -> dict:
    from neuroadapt.export.nir import from_nir, to_nir
    from neuroadapt.export.nir.verify import verify_graph

    cfg = merge_config(DEFAULTS, config_overrides, QUICK)
    device = resolve_device(cfg["device"])
    logging.getLogger().setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    T, B, dt = cfg["T"], cfg["B"], cfg["dt"]
    with num_threads(cfg["threads"]):
        torch.manual_seed(cfg["seed"])
        gen = torch.Generator().manual_seed(cfg["seed"])
        parity, graphs = {}, {}
        for name, (model, shape) in networks(cfg).items():
            model.eval()
            x = (torch.rand(T, B, *shape, generator=gen) < cfg["input_rate"]).float()
            graph, info = to_nir(model, dt, input_shape=shape, return_info=True)
            rep = verify_graph(model, graph, info, x, dt)
            parity[name] = {"spikes_source": rep["importer"]["spikes_source"],
                            "neuroadapt_mismatches": rep["importer"]["spike_mismatches"],
                            "norse_status": rep["norse"]["status"],
                            "norse_mismatches": rep["norse"].get("spike_mismatches")}
            graphs[name] = (graph, x)
        graph, x = graphs["LIF"]
        ours = from_nir(graph, dt)
        import norse.torch as nt

        theirs = nt.from_nir(graph, dt=dt)

        def norse_run():
            state = None
            for t in range(x.shape[0]):
                _, state = theirs(x[t], state)

        peers = [Peer("neuroadapt", lambda: ours(x), [], "neuroadapt.export.nir.from_nir(graph)(x)"),
                 Peer("norse", norse_run, [], "norse.torch.from_nir(graph, dt=dt), stepped T times")]
        with torch.no_grad():
            times = time_interleaved(peers, device, cfg["warmup"], cfg["repeats"])
        env = environment(device)
    stats = {k: summarize(v) for k, v in times.items()}
    results = {k: s["median"] for k, s in stats.items()}
    identical = all(p["neuroadapt_mismatches"] == 0 and p["norse_mismatches"] == 0 for p in parity.values())
    config = {**cfg, **env, "parity": parity, "spikes_identical": identical, "stats_ms": stats,
              "measure": "median ms of one forward pass over T steps (no gradients), peers interleaved",
              "peers": {p.name: p.what for p in peers}}
    return {"bench": NAME, "config": config, "results_ms": results,
            "ratios": {"norse_over_neuroadapt": results["norse"] / results["neuroadapt"]}}
