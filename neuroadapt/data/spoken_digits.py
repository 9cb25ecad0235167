"""Spoken digits in the SHD format: ``make_shd``, the shipped set and the ``spoken_digits`` data set.

:func:`make_shd` (defined in :mod:`neuroadapt.data.shd_maker`) turns speech into an SHD-layout
HDF5 file: a folder of WAV files with a labels CSV, or (``espeak=True``) a synthetic, augmented
set of the 20 SHD words spoken by espeak-ng speakers. :func:`make_spoken_digits` makes the
speaker-disjoint train/test pair that ships with neuroadapt (``SHIPPED_CONFIG``); regenerate it
with ``python -m neuroadapt.data.spoken_digits neuroadapt/data/assets``.

:class:`SpokenDigits` (registry name ``spoken_digits``) serves the set shipped in
``neuroadapt/data/assets`` (``root=None``) or any folder holding ``shd_train.h5`` /
``shd_test.h5`` -- also the real SHD files. See ``docs/spoken_digits.md``.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from neuroadapt._io import make_public
from neuroadapt.data.shd_maker import FORMAT_VERSION, make_shd, read_labels_csv
from neuroadapt.errors import ConfigError, DataError, InvalidInputError

__all__ = [
    "make_shd",
    "make_spoken_digits",
    "read_labels_csv",
    "SpokenDigits",
    "SHIPPED_CONFIG",
    "shipped_files",
    "ASSETS",
    "FORMAT_VERSION",
]

ASSETS = Path(__file__).resolve().parent / "assets"
#: how the shipped set was generated (``make_spoken_digits(out_dir)`` regenerates it)
SHIPPED_CONFIG = {
    "duration": 1.4,
    "roster_seed": 0,
    "train": {"n_speakers": 24, "first_speaker": 0, "repeats": 6, "seed": 1},
    "test": {"n_speakers": 8, "first_speaker": 24, "repeats": 5, "seed": 2},
    "augment": {"onset": [0.0, 1.0], "speed": [0.7, 1.45], "pitch": [-10.0, 10.0], "noise_prob": 0.7,
                "snr_db": [12.0, 30.0], "noise_kinds": ["white", "pink", "babble"], "reverb_prob": 0.2,
                "rt60": [0.1, 0.3], "drr_db": [3.0, 10.0], "gain_db": [-6.0, 6.0], "babble_talkers": [3, 8]},
    "cochlea": {},
}


def _compress_file(src, dst) -> int:
    """xz-compress ``src`` into ``dst`` (atomic). HDF5 variable-length data is stored uncompressed
    inside the file; xz shrinks these spike files to about a third (gzip: ~0.43)."""
    import lzma

    dst = os.fspath(dst)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(dst)), suffix=".tmp")
    os.close(fd)
    try:
        with open(src, "rb") as fin, lzma.open(tmp, "wb", preset=9 | lzma.PRESET_EXTREME) as fout:
            shutil.copyfileobj(fin, fout)
        make_public(tmp)
        os.replace(tmp, dst)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return os.path.getsize(dst)


def make_spoken_digits(out_dir, *, config: dict | None = None, compress: bool = True, progress: bool = True) -> dict:
    """Generate the speaker-disjoint train/test pair (``SHIPPED_CONFIG`` unless ``config``) into
    ``out_dir`` as ``shd_train.h5`` / ``shd_test.h5`` (with ``compress``: ``.h5.xz`` instead).
    Returns ``{"train": summary, "test": summary}``."""
    cfg = json.loads(json.dumps(SHIPPED_CONFIG if config is None else config))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {}
    for split in ("train", "test"):
        part = cfg[split]
        path = out_dir / f"shd_{split}.h5"
        summary = make_shd(path, espeak=True, n_speakers=part["n_speakers"], seed=part["seed"],
                           augment=cfg.get("augment") or "default", progress=progress,
                           first_speaker=part["first_speaker"], repeats=part["repeats"],
                           roster_seed=cfg.get("roster_seed", 0), duration=cfg.get("duration", 1.0),
                           cochlea=cfg.get("cochlea") or {})
        if compress:
            summary["xz_bytes"] = _compress_file(path, str(path) + ".xz")
            path.unlink()
            summary["path"] = str(path) + ".xz"
        result[split] = summary
    return result


# ----------------------------------------------------------------------------- the data set
def _cache_root() -> Path:
    env = os.environ.get("NEUROADAPT_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "neuroadapt"


_COMPRESSED = (".xz", ".gz")


def _decompress_cached(packed: Path, name: str) -> Path:
    """``packed`` (``.xz`` or ``.gz``) decompressed into the cache folder, keyed by its content
    hash; done once per file version, atomically (a concurrent reader never sees a partial file)."""
    import lzma

    data = packed.read_bytes()
    h = hashlib.sha256(data).hexdigest()[:16]
    opener = lzma.open if packed.suffix == ".xz" else gzip.open
    for root in (_cache_root(), Path(tempfile.gettempdir()) / "neuroadapt-cache"):
        target = root / "spoken_digits" / h / name
        if target.is_file():
            return target
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
            os.close(fd)
        except OSError:
            continue
        try:
            with opener(packed, "rb") as fin, open(tmp, "wb") as fout:
                shutil.copyfileobj(fin, fout)
            os.replace(tmp, target)
            return target
        except (EOFError, lzma.LZMAError, gzip.BadGzipFile, ValueError) as exc:
            raise DataError(f"{packed}: corrupted compressed file ({type(exc).__name__}: {exc}); reinstall "
                            f"neuroadapt or regenerate it with `python -m neuroadapt.data.spoken_digits`") from None
        except OSError:
            continue
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise DataError(f"cannot decompress {packed}: no writable cache folder (set NEUROADAPT_CACHE to one)")


def _find_pair(folder: Path, what: str) -> dict:
    out = {}
    for split in ("train", "test"):
        plain = folder / f"shd_{split}.h5"
        if plain.is_file():
            out[split] = plain
            continue
        for ext in _COMPRESSED:
            packed = folder / f"shd_{split}.h5{ext}"
            if packed.is_file():
                out[split] = _decompress_cached(packed, plain.name)
                break
        else:
            raise DataError(what.format(path=plain))
    return out


def shipped_files() -> dict:
    """Paths of the shipped train/test SHD files (decompressed into the cache on first use)."""
    return _find_pair(ASSETS, "the shipped spoken-digit file {path}.xz is missing; reinstall neuroadapt or "
                              "regenerate it with `python -m neuroadapt.data.spoken_digits " + str(ASSETS) + "`")


def _root_files(root) -> dict:
    root = Path(os.fspath(root))
    if root.is_file():
        raise DataError(f"{root}: dataset.root must be a folder holding shd_train.h5 and shd_test.h5, not a file")
    return _find_pair(root, "{path} not found: dataset.root must be a folder with shd_train.h5 and shd_test.h5 "
                            "(the real SHD files from zenkelab.org/datasets, or files written by make_shd; "
                            ".h5.gz / .h5.xz also work); leave it unset to use the shipped spoken digits")


class _Split:
    """One split's events, pre-binned: per-sample flat indices ``bin * C + unit`` (int32)."""

    def __init__(self, path, indices, dt, duration, n_bins):
        from neuroadapt.data.events import bin_edges
        from neuroadapt.data.shd import SHDFile

        with SHDFile(path) as f:
            self.n_channels = f.n_channels
            self.classes = list(f.classes)
            labels = f.labels
            speakers = f.speakers if f.speakers is not None else np.zeros(len(f), dtype=np.int64)
            indices = np.arange(len(f)) if indices is None else np.asarray(indices, dtype=np.int64)
            edges = bin_edges(dt, n_bins)
            flats, counts = [], []
            for start in range(0, len(indices), 512):
                chunk = indices[start : start + 512]
                for t, u, _ in f.read_many(chunk):
                    b = np.searchsorted(edges, t.astype(np.float64), side="right") - 1
                    keep = (b >= 0) & (b < n_bins)
                    flats.append((b[keep] * self.n_channels + u[keep].astype(np.int64)).astype(np.int32))
                    counts.append(int(keep.sum()))
        self.labels = labels[indices].astype(np.int64)
        self.speakers = speakers[indices].astype(np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.flat = np.concatenate(flats) if flats else np.zeros(0, dtype=np.int32)
        self.path = os.fspath(path)

    def __len__(self):
        return len(self.labels)

    def dense(self, index: np.ndarray, n_bins: int, time_shift=None, channel_shift=None) -> np.ndarray:
        """Spike counts ``(T, B, C)`` float32 of samples ``index``; optional per-sample integer
        shifts (in bins / channels; spikes shifted out of range are dropped)."""
        c = self.n_channels
        starts, ends = self.offsets[index], self.offsets[index + 1]
        lens = ends - starts
        total = int(lens.sum())
        batch = len(index)
        if total == 0:
            return np.zeros((n_bins, batch, c), dtype=np.float32)
        # gather the samples' flat indices without a Python loop over spikes
        pos = np.repeat(starts - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens) + np.arange(total)
        flat = self.flat[pos].astype(np.int64)
        sample = np.repeat(np.arange(batch), lens)
        b, u = np.divmod(flat, c)
        if time_shift is not None or channel_shift is not None:
            if time_shift is not None:
                b = b + np.repeat(np.asarray(time_shift, dtype=np.int64), lens)
            if channel_shift is not None:
                u = u + np.repeat(np.asarray(channel_shift, dtype=np.int64), lens)
            keep = (b >= 0) & (b < n_bins) & (u >= 0) & (u < c)
            b, u, sample = b[keep], u[keep], sample[keep]
        counts = np.bincount((b * batch + sample) * c + u, minlength=n_bins * batch * c)
        return counts.reshape(n_bins, batch, c).astype(np.float32)


class SpokenDigits:
    """Spoken digits (20 classes, 700 channels) in the SHD format, as a registered data set.

    ``root=None``: the set shipped with neuroadapt (espeak-ng speakers, augmented; train and test
    speakers disjoint). ``root=FOLDER``: ``FOLDER/shd_train.h5`` and ``FOLDER/shd_test.h5``
    (or ``.h5.gz``) -- e.g. the real SHD files, or two files written by :func:`make_shd`.

    Samples are binned to ``duration / dt`` steps of ``dt`` seconds from t = 0 (spikes later are
    dropped). ``val_speakers=N`` holds out the last ``N`` training speakers (by id) and serves
    them as the ``"test"`` split, for choosing hyper-parameters without the test set.
    ``batch(split, index)`` -> time-major spike counts ``(T, B, 700)`` float32 and labels ``(B,)``;
    the data are deterministic (the generator argument is not used).
    """

    name = "spoken_digits"
    task = "classification"
    OPTIONS = {
        "dt": (float, 0.02, "bin width in seconds"),
        "duration": (float, 1.4, "window length in seconds from t = 0 (spikes after it are dropped)"),
        "val_speakers": (int, 0, "hold out the last N training speakers as the 'test' split (0: real test set)"),
        "max_train": ((int, type(None)), None, "use only the first N training samples (quick tests)"),
        "max_test": ((int, type(None)), None, "use only the first N test samples (quick tests)"),
        "channel_shift": (int, 0, "training batches only: shift each sample's channels by a random "
                                  "integer in [-N, N] (like a formant / vocal-tract-length change)"),
        "time_shift": (int, 0, "training batches only: shift each sample by a random number of bins "
                               "in [-N, N]"),
    }

    def __init__(self, root=None, dt: float = 0.02, duration: float = 1.4, val_speakers: int = 0,
                 max_train: int | None = None, max_test: int | None = None, channel_shift: int = 0,
                 time_shift: int = 0):
        from neuroadapt.data.events import n_bins_for

        try:
            self.n_steps = n_bins_for(dt, duration)
        except InvalidInputError as exc:
            raise ConfigError(f"dataset: {exc}") from None
        for key, val in (("val_speakers", val_speakers), ("channel_shift", channel_shift), ("time_shift", time_shift)):
            if val < 0:
                raise ConfigError(f"dataset.{key} must be >= 0, got {val}")
        self.channel_shift, self.time_shift = int(channel_shift), int(time_shift)
        self.dt, self.duration, self.val_speakers = float(dt), float(duration), int(val_speakers)
        self.root = None if root is None else os.fspath(root)
        files = shipped_files() if root is None else _root_files(root)
        self.files = {k: os.fspath(v) for k, v in files.items()}
        if val_speakers:
            from neuroadapt.data.shd import SHDFile

            with SHDFile(files["train"]) as f:
                spk = f.speakers if f.speakers is not None else np.zeros(len(f), dtype=np.int64)
            ids = np.unique(spk)
            if val_speakers >= len(ids):
                raise ConfigError(f"dataset.val_speakers={val_speakers} leaves no training speaker "
                                  f"(the training file has {len(ids)} speakers)")
            held = ids[-val_speakers:]
            is_val = np.isin(spk, held)
            parts = {"train": (files["train"], np.flatnonzero(~is_val)),
                     "test": (files["train"], np.flatnonzero(is_val))}
        else:
            parts = {"train": (files["train"], None), "test": (files["test"], None)}
        self._splits = {}
        for split, (path, idx) in parts.items():
            limit = max_train if split == "train" else max_test
            if limit is not None:
                from neuroadapt.data.shd import SHDFile

                if idx is None:
                    with SHDFile(path) as f:
                        idx = np.arange(len(f))
                idx = idx[: max(1, int(limit))]
            self._splits[split] = _Split(path, idx, self.dt, self.duration, self.n_steps)
        tr, te = self._splits["train"], self._splits["test"]
        if tr.n_channels != te.n_channels:
            raise DataError(f"train and test files have different channel counts ({tr.n_channels} vs {te.n_channels})")
        self.n_inputs = tr.n_channels
        self.classes = tr.classes if len(tr.classes) >= len(te.classes) else te.classes
        self.n_classes = len(self.classes)
        self._y = {k: __import__("torch").from_numpy(s.labels.copy()) for k, s in self._splits.items()}

    def _split(self, split: str) -> _Split:
        if split not in self._splits:
            raise ConfigError(f"unknown split {split!r}; use 'train' or 'test'")
        return self._splits[split]

    def num_samples(self, split: str) -> int:
        return len(self._split(split))

    def labels(self, split: str):
        self._split(split)
        return self._y[split]

    def speakers(self, split: str) -> np.ndarray:
        """Speaker id of every sample of ``split``."""
        return self._split(split).speakers

    def dense(self, split: str, index=None) -> np.ndarray:
        """Spike counts ``(T, B, n_inputs)`` as NumPy (all samples when ``index`` is None)."""
        s = self._split(split)
        idx = np.arange(len(s)) if index is None else np.asarray(index, dtype=np.int64).reshape(-1)
        if len(idx) and (idx.min() < 0 or idx.max() >= len(s)):
            raise IndexError(f"sample index out of range for the {split} split ({len(s)} samples)")
        return s.dense(idx, self.n_steps)

    def batch(self, split: str, index, generator=None):
        """Spike counts ``(T, B, n_inputs)`` float32 and labels ``(B,)`` int64 of samples ``index``.

        Test batches are deterministic. Training batches get the random shifts of
        ``channel_shift`` / ``time_shift`` (if set), drawn from ``generator``."""
        import torch

        idx = torch.as_tensor(index, dtype=torch.long).reshape(-1)
        s = self._split(split)
        ts = cs = None
        if split == "train" and (self.time_shift or self.channel_shift):
            n = len(idx)
            if self.time_shift:
                ts = torch.randint(-self.time_shift, self.time_shift + 1, (n,), generator=generator).numpy()
            if self.channel_shift:
                cs = torch.randint(-self.channel_shift, self.channel_shift + 1, (n,), generator=generator).numpy()
        arr = idx.numpy()
        if len(arr) and (arr.min() < 0 or arr.max() >= len(s)):
            raise IndexError(f"sample index out of range for the {split} split ({len(s)} samples)")
        x = torch.from_numpy(s.dense(arr, self.n_steps, ts, cs))
        return x, self._y[split][idx]

    def __repr__(self) -> str:
        src = "shipped" if self.root is None else self.root
        return (f"SpokenDigits({src!r}, dt={self.dt}, duration={self.duration}, T={self.n_steps}, "
                f"train={self.num_samples('train')}, test={self.num_samples('test')}, "
                f"val_speakers={self.val_speakers})")


def _main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m neuroadapt.data.spoken_digits",
                                description="regenerate the shipped spoken-digit set (SHIPPED_CONFIG)")
    p.add_argument("out_dir", help="folder for shd_train.h5.gz / shd_test.h5.gz (the package's is "
                                   "neuroadapt/data/assets)")
    p.add_argument("--no-compress", action="store_true", help="keep plain .h5 files")
    args = p.parse_args(argv)
    result = make_spoken_digits(args.out_dir, compress=not args.no_compress)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_main())
