"""SHD / SSC files as a torch Dataset of dense spike-count frames (time-major batches).

Built on :class:`neuroadapt.data.shd.SHDFile` (lazy, one open handle per process) and
:func:`neuroadapt.data.events.bin_batch`.
"""

from __future__ import annotations

import numpy as np

from neuroadapt.data.events import DEFAULT_DT, DEFAULT_DURATION, bin_batch, bin_spikes, n_bins_for
from neuroadapt.data.shd import SHDFile
from neuroadapt.errors import InvalidInputError

def shd_collate(batch):
    """Collate ``[(frames (T, C), label), ...]`` into time-major ``(T, B, C)`` float and ``(B,)`` int64."""
    import torch

    if not batch:
        raise InvalidInputError("shd_collate: empty batch")
    frames = torch.stack([torch.as_tensor(x) for x, _ in batch], dim=1).float()
    labels = torch.as_tensor([int(y) for _, y in batch], dtype=torch.int64)
    return frames, labels


try:  # torch is a dependency of the package, but keep file I/O importable without it
    from torch.utils.data import Dataset as _TorchDataset
except ImportError:  # pragma: no cover
    _TorchDataset = object


class SHDDataset(_TorchDataset):
    """An SHD / SSC file as a map-style torch Dataset of dense spike-count frames.

    ``ds[i]`` -> ``(frames, label)``: ``frames`` a float32 tensor ``(T, n_channels)`` of spike
    counts, ``T = duration / dt`` bins from t = 0 (spikes past ``duration`` dropped), passed
    through ``transform`` if given; ``label`` an int (through ``target_transform``). Use
    ``DataLoader(ds, batch_size=B, collate_fn=shd_collate)`` for time-major ``(T, B, C)``
    batches, or :meth:`get_batch`. The file is opened once per process (lazily again in each
    DataLoader worker), never per sample. ``n_classes`` comes from the file (``extra/keys``,
    else the largest label + 1): 20 for SHD, 35 for SSC.
    """

    collate_fn = staticmethod(shd_collate)

    def __init__(
        self,
        path,
        dt: float = DEFAULT_DT,
        duration: float = DEFAULT_DURATION,
        transform=None,
        target_transform=None,
        *,
        n_channels: int | None = None,
        require_sorted: bool = True,
    ):
        self.n_steps = n_bins_for(dt, duration)
        self.dt = float(dt)
        self.duration = float(duration)
        self.transform = transform
        self.target_transform = target_transform
        self.file = SHDFile(path, n_channels=n_channels, require_sorted=require_sorted)
        self.path = self.file.path
        self.n_inputs = self.file.n_channels
        self.n_classes = self.file.n_classes
        self.classes = self.file.classes

    @property
    def labels(self) -> np.ndarray:
        return self.file.labels

    def __len__(self) -> int:
        return len(self.file)

    def __getitem__(self, index):
        import torch

        t, u, label = self.file.read_raw(index)
        frames = torch.from_numpy(
            bin_spikes(t, u, self.n_inputs, self.dt, self.duration, validate=False)
        )
        if self.transform is not None:
            frames = self.transform(frames)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return frames, label

    def get_batch(self, indices):
        """Samples ``indices`` binned together: ``(x (T, B, C) float32, y (B,) int64)`` tensors.

        One vectorised binning for the whole batch; with a ``transform`` / ``target_transform``
        it applies them per sample instead (same result as ``shd_collate([ds[i] for i in indices])``).
        """
        import torch

        idx = np.asarray(indices).reshape(-1)
        if self.transform is not None or self.target_transform is not None:
            return shd_collate([self[i] for i in idx.tolist()])
        samples = self.file.read_many(idx)
        x = bin_batch(
            [s[0] for s in samples], [s[1] for s in samples], self.n_inputs, self.dt, self.duration,
            validate=False,
        )
        y = torch.as_tensor([s[2] for s in samples], dtype=torch.int64)
        return torch.from_numpy(x), y

    def close(self) -> None:
        self.file.close()

    def __repr__(self) -> str:
        return (
            f"SHDDataset({self.path!r}, samples={len(self)}, classes={self.n_classes}, "
            f"T={self.n_steps} x dt={self.dt} s, channels={self.n_inputs})"
        )
