"""Why NHL's Hebbian step needs centred patches: the first-layer filters under the plain rule.

Trains the digits-C CNN source model (recipe ``digits_c_cnn``, seed 0) and runs NHL's Hebbian
step alone (modulator off, batch-norm statistics of the test batch, as BN) through the
**validation** stream (15 corruptions, severity 5, continual), for the plain SoftHebb rule on raw
patches and for standardised + centred patches, at a few Hebbian rates. Writes

* ``nhl_filter_drift.json``: per setting, the mean error, the mean cosine of the final filters
  with the source filters, the mean |cosine| between distinct filters, and the mean-intensity
  (DC) fraction ``|mean(w)| * sqrt(n) / |w|`` of the filters (source: same numbers);
* ``nhl_filter_drift.png``: the 16 source filters and the final filters of the two rules.

Usage: ``python sims/nhl_filter_drift.py [--out DIR]`` or ``neuroadapt sim nhl_filter_drift``
(about a minute on one core).
"""
from __future__ import annotations

import argparse
import copy
import io
import os
import sys

import numpy as np

SETTINGS = [("bn (no Hebbian step)", dict(hebb_lr=0.0)),
            ("raw patches, eta 0.01", dict(hebb_lr=0.01)),
            ("raw patches, eta 0.05", dict(hebb_lr=0.05)),
            ("standardised+centred, eta 0.03", dict(hebb_lr=0.03, standardise=True, center_patches=True)),
            ("standardised+centred, eta 0.05", dict(hebb_lr=0.05, standardise=True, center_patches=True))]


def _stats(w, w0):
    import torch.nn.functional as F

    w, w0 = w.flatten(1), w0.flatten(1)
    wn = F.normalize(w, dim=1)
    g = (wn @ wn.T).abs()
    return {"cos_to_source": round(float(F.cosine_similarity(w, w0, dim=1).mean()), 4),
            "pairwise_abs_cos": round(float((g.sum() - g.trace()) / (g.numel() - len(g))), 4),
            "dc_fraction": round(float((w.mean(1).abs() * w.shape[1] ** 0.5 / w.norm(dim=1)).mean()), 4)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="nhl_filter_drift", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join("out", "sims", "nhl_filter_drift"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import torch

    from neuroadapt._io import atomic_write, atomic_write_json
    from neuroadapt.engine.adapt import load_adapt_recipe, run_stream, train_source
    from neuroadapt.engine.adapt_data import load_adapt_data
    from neuroadapt.learn.tta import make_method
    from neuroadapt.learn.tta.models import build_model

    torch.set_num_threads(1)
    rec = load_adapt_recipe("digits_c_cnn")
    os.makedirs(args.out, exist_ok=True)
    data = load_adapt_data(rec["dataset"], "val", cache=os.path.join(args.out, ".cache"))
    torch.manual_seed(args.seed)
    model = build_model({**rec["model"], "in_channels": 1})
    train_source(model, data.train_x, data.train_y, rec["source"], args.seed, "cpu", progress=False)
    w0 = model.conv1.weight.detach().clone()
    summary = {"source_filters": _stats(w0, w0), "runs": {}}
    finals = {}
    for label, opts in SETTINGS:
        meth = make_method("nhl", copy.deepcopy(model), lr=0.0, **opts)
        errs = run_stream(meth, data.domains, "continual", rec["adapt"]["batch_size"], args.seed, "cpu")
        w = meth.conv.weight.detach().clone()
        finals[label] = w
        summary["runs"][label] = {"mean_error": round(float(np.mean(list(errs.values()))), 2), **_stats(w, w0)}
        print(label, summary["runs"][label], flush=True)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [("source", w0), ("raw, eta 0.05", finals["raw patches, eta 0.05"]),
            ("centred, eta 0.05", finals["standardised+centred, eta 0.05"])]
    fig, axes = plt.subplots(len(rows), w0.shape[0], figsize=(w0.shape[0] * 0.6, len(rows) * 0.75))
    for r, (name, w) in enumerate(rows):
        for k in range(w.shape[0]):
            ax = axes[r, k]
            ax.imshow(w[k, 0].numpy(), cmap="RdBu_r", vmin=-float(w0.abs().max()), vmax=float(w0.abs().max()))
            ax.set_xticks([]), ax.set_yticks([])
        axes[r, 0].set_ylabel(name, fontsize=6, rotation=0, ha="right")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write(os.path.join(args.out, "nhl_filter_drift.png"), lambda f: f.write(buf.getvalue()))
    atomic_write_json(os.path.join(args.out, "nhl_filter_drift.json"), summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
