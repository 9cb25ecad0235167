"""Baselines for spike-count data sets: a linear read-out of time-binned spike counts.

The spoken-digit set is meant to separate models the way SHD does; its difficulty is stated by
this baseline (logistic regression on time-binned spike counts, tuned on held-out training
speakers, never on the test split). ``neuroadapt data baseline [--root DIR]`` runs it.
"""
from __future__ import annotations

import numpy as np

from neuroadapt.errors import InvalidInputError

__all__ = ["linear_baseline"]


def _rebin(x: np.ndarray, n_bins: int) -> np.ndarray:
    """(T, N, C) counts -> (N, n_bins * C) features: sums over ``n_bins`` equal groups of steps."""
    t = x.shape[0]
    if t % n_bins:
        raise InvalidInputError(f"linear baseline: {t} time steps do not split into {n_bins} equal bins")
    x = x.reshape(n_bins, t // n_bins, *x.shape[1:]).sum(axis=1)  # (n_bins, N, C)
    return np.ascontiguousarray(x.transpose(1, 0, 2).reshape(x.shape[1], -1))


def linear_baseline(dataset, *, n_bins=None, Cs=(1e-3, 1e-2, 1e-1), transforms=("log1p",),
                    val_speakers: int = 4, max_iter: int = 300, verbose: bool = False) -> dict:
    """Logistic regression on time-binned spike counts (``n_bins`` bins x channels), tuned honestly.

    The hyper-parameters (number of time bins -- by default every divisor of the step count between
    5 and 20 --, inverse regularisation ``C``, count transform
    ``log1p`` or raw ``counts``; features standardised) are chosen on a validation split made of the
    last ``val_speakers`` training speakers; the chosen model is then refitted on all training
    samples and evaluated once on the test split. Returns the test accuracy, the choice and the
    validation grid.

    ``dataset`` is a :class:`~neuroadapt.data.spoken_digits.SpokenDigits` (or anything with
    ``dense(split)`` -> ``(T, N, C)`` counts, ``labels(split)`` and ``speakers(split)``).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    xtr, ytr = dataset.dense("train"), dataset.labels("train").numpy()
    if n_bins is None:  # every number of equal time bins between 5 and 20 the steps split into
        n_bins = [nb for nb in range(5, 21) if xtr.shape[0] % nb == 0] or [xtr.shape[0]]
    spk = dataset.speakers("train")
    ids = np.unique(spk)
    if not 0 < val_speakers < len(ids):
        raise InvalidInputError(f"val_speakers must lie in 1..{len(ids) - 1}, got {val_speakers}")
    is_val = np.isin(spk, ids[-val_speakers:])

    def features(x, nb, tf):
        f = _rebin(x, nb)
        return np.log1p(f) if tf == "log1p" else f

    def fit(xa, ya, c):
        scaler = StandardScaler().fit(xa)
        clf = LogisticRegression(C=c, max_iter=max_iter)
        clf.fit(scaler.transform(xa), ya)
        return scaler, clf

    grid = []
    for nb in n_bins:
        for tf in transforms:
            f = features(xtr, nb, tf)
            for c in Cs:
                scaler, clf = fit(f[~is_val], ytr[~is_val], c)
                acc = float((clf.predict(scaler.transform(f[is_val])) == ytr[is_val]).mean())
                grid.append({"n_bins": nb, "transform": tf, "C": c, "val_accuracy": acc})
                if verbose:
                    print(grid[-1], flush=True)
    best = max(grid, key=lambda g: g["val_accuracy"])
    f = features(xtr, best["n_bins"], best["transform"])
    scaler, clf = fit(f, ytr, best["C"])
    xte, yte = dataset.dense("test"), dataset.labels("test").numpy()
    test_acc = float((clf.predict(scaler.transform(features(xte, best["n_bins"], best["transform"]))) == yte).mean())
    return {"test_accuracy": test_acc, "choice": best, "grid": grid,
            "train_accuracy": float((clf.predict(scaler.transform(f)) == ytr).mean())}
