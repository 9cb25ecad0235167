"""Figures of a run, written to ``plots/*.png`` with matplotlib's Agg backend (atomic writes).

* ``loss.png`` -- train and test loss per epoch;
* ``accuracy.png`` -- train and test accuracy per epoch;
* ``spike_raster.png`` -- the first hidden layer's spikes for one test sample;
* ``membrane.png`` -- membrane traces of a few neurons of the first hidden layer (same sample),
  with the firing threshold.
"""
from __future__ import annotations

import io
from pathlib import Path

from neuroadapt.engine.rundir import atomic_write

__all__ = ["write_plots", "PLOT_FILES"]

PLOT_FILES = ("loss.png", "accuracy.png", "spike_raster.png", "membrane.png")


def _save(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write(path, lambda f: f.write(buf.getvalue()))


def write_plots(plot_dir: str | Path, history: list[dict], sample: dict | None = None) -> list[Path]:
    """Write the run's figures; ``sample`` holds ``spikes`` (T, N) and ``membrane`` (T, N) of the
    first hidden layer for one test sample, plus ``label``, ``prediction`` and ``threshold``."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import numpy as np

    plot_dir = Path(plot_dir)
    written = []
    epochs = [h["epoch"] for h in history]
    for name, key, ylabel in (("loss.png", "loss", "cross-entropy loss"), ("accuracy.png", "accuracy", "accuracy")):
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot(epochs, [h[f"train_{key}"] for h in history], "o-", label="train")
        scored = [h for h in history if f"test_{key}" in h]  # training.eval_every may skip epochs
        ax.plot([h["epoch"] for h in scored], [h[f"test_{key}"] for h in scored], "s-", label="test")
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend()
        _save(fig, plot_dir / name)
        plt.close(fig)
        written.append(plot_dir / name)
    if sample is not None:
        spikes = np.asarray(sample["spikes"])
        mem = np.asarray(sample["membrane"])
        title = f"test sample: label {sample['label']}, predicted {sample['prediction']}"
        fig, ax = plt.subplots(figsize=(6, 4))
        t_idx, n_idx = np.nonzero(spikes)
        ax.scatter(t_idx, n_idx, s=12, marker="|", color="k", linewidths=1)
        ax.set_xlim(-0.5, spikes.shape[0] - 0.5)
        ax.set_ylim(-0.5, spikes.shape[1] - 0.5)
        ax.set_xlabel("time step")
        ax.set_ylabel("hidden neuron")
        ax.set_title(f"hidden-layer spikes ({int(spikes.sum())} in total)\n{title}", fontsize=9)
        _save(fig, plot_dir / "spike_raster.png")
        plt.close(fig)
        written.append(plot_dir / "spike_raster.png")

        # a few neurons that fire, but not at every step (their traces show charge, spike, reset)
        rates = spikes.mean(0)
        score = np.where(rates > 0, np.abs(rates - 0.2), 10.0 + rates)
        chosen = sorted(np.argsort(score, kind="stable")[: min(4, mem.shape[1])].tolist())
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for n in chosen:
            ax.plot(mem[:, n], label=f"neuron {n}")
        thr = sample.get("threshold")
        if thr is not None:
            ax.axhline(float(thr), color="gray", ls="--", lw=1, label="threshold")
        ax.set_xlabel("time step")
        ax.set_ylabel("membrane potential")
        ax.set_title(f"membrane traces, first hidden layer\n{title}", fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
        _save(fig, plot_dir / "membrane.png")
        plt.close(fig)
        written.append(plot_dir / "membrane.png")
    return written
