"""``neuroadapt data plot FILE``: spike rasters of a few samples of an SHD-format file.

One panel per sample (time on x, channel on y), titled with its class name and speaker, and --
for files written by :func:`~neuroadapt.data.shd_maker.make_shd` -- the augmentation it got
(noise kind and SNR, reverberation, speed). Written atomically with matplotlib's Agg backend.
"""
from __future__ import annotations

import io
import math

import numpy as np

from neuroadapt._io import atomic_path
from neuroadapt.errors import InvalidInputError

__all__ = ["plot_samples"]


def _augment_notes(path, indices) -> list[str]:
    import h5py

    notes = [""] * len(indices)
    with h5py.File(path, "r") as f:
        if "extra/augment" not in f:
            return notes
        grp = f["extra/augment"]
        cols = {k: grp[k][()] for k in grp}
    for n, i in enumerate(indices):
        parts = []
        kind = cols.get("noise")
        if kind is not None:
            k = kind[i].decode() if isinstance(kind[i], bytes) else str(kind[i])
            if k:
                parts.append(f"{k} {cols['snr_db'][i]:.0f} dB")
        if "rt60" in cols and not math.isnan(float(cols["rt60"][i])):
            parts.append(f"RT60 {cols['rt60'][i]:.2f} s")
        if "speed" in cols and not math.isnan(float(cols["speed"][i])):
            parts.append(f"x{cols['speed'][i]:.2f}")
        notes[n] = ", ".join(parts) if parts else "clean"
    return notes


def plot_samples(path, out, indices=None, n: int = 6, seed: int = 0) -> dict:
    """Spike rasters of ``indices`` (default: ``n`` samples drawn with ``seed``) of the SHD file
    ``path``, written to the PNG ``out``. Returns ``{"out", "indices"}``."""
    from neuroadapt.data.shd import SHDFile

    with SHDFile(path) as f:
        total = len(f)
        if indices is None:
            if n < 1:
                raise InvalidInputError(f"data plot: the number of samples must be >= 1, got {n}")
            indices = sorted(np.random.default_rng(seed).choice(total, size=min(n, total), replace=False).tolist())
        indices = [int(i) for i in indices]
        bad = [i for i in indices if not 0 <= i < total]
        if bad:
            raise InvalidInputError(f"data plot: sample indices {bad} out of range; {path} has {total} samples")
        samples = f.read_many(indices)
        classes, speakers, n_ch = f.classes, f.speakers, f.n_channels
    notes = _augment_notes(path, indices)

    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    t_end = max([float(t.max()) for t, _, _ in samples if len(t)] + [1e-3]) * 1.02
    cols = min(3, len(indices))
    rows = math.ceil(len(indices) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False, sharex=True, sharey=True)
    for ax, i, (t, u, label), note in zip(axes.flat, indices, samples, notes):
        ax.scatter(t, u, s=0.6, color="k", linewidths=0)
        name = classes[label] if label < len(classes) else str(label)
        spk = "" if speakers is None else f", speaker {int(speakers[i])}"
        ax.set_title(f"#{i}: {name}{spk}" + (f"\n{note}" if note else ""), fontsize=9)
        ax.set_xlabel("time (s)")
        ax.set_ylim(-1, n_ch)
        ax.set_xlim(0, t_end)
    for ax in axes[:, 0]:
        ax.set_ylabel("channel")
    for ax in list(axes.flat)[len(indices):]:
        ax.axis("off")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(buf.getvalue())
    return {"out": str(out), "indices": indices}

