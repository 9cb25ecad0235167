"""The real Spiking Heidelberg Digits (or any two-file SHD-format folder) as a registered data set.

``dataset: {name: shd}`` in a recipe plus ``--data-root DIR`` (or ``dataset.root``), where ``DIR``
holds ``shd_train.h5`` and ``shd_test.h5`` (``.h5.gz`` also works) -- the files from
zenkelab.org/datasets, or two files written by ``neuroadapt data make-shd``. Binning and options
are those of :class:`neuroadapt.data.spoken_digits.SpokenDigits`.
"""

from __future__ import annotations

from neuroadapt.data.spoken_digits import SpokenDigits
from neuroadapt.errors import ConfigError


class SHDFolder(SpokenDigits):
    """SHD-format train/test files from a local folder (no shipped default)."""

    name = "shd"

    def __init__(self, root=None, **options):
        if root is None:
            raise ConfigError("dataset 'shd' reads local files: pass --data-root DIR (or dataset.root) where "
                              "DIR holds shd_train.h5 and shd_test.h5 (from zenkelab.org/datasets, unzipped)")
        super().__init__(root=root, **options)
