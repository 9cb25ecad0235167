"""Reading and writing ``.nir`` files (NIR's HDF5 layout) atomically, with clear errors."""
from __future__ import annotations

import os
from pathlib import Path

import nir

from neuroadapt._io import atomic_path
from neuroadapt.errors import DataError

__all__ = ["write_nir", "read_nir"]


def write_nir(model_or_graph, path, dt: float | None = None, **to_nir_kwargs) -> str:
    """Write a model (converted with :func:`~neuroadapt.export.nir.to_nir` at ``dt``) or a
    ready ``nir.NIRGraph`` to ``path``.  The file appears only complete (temp file + rename)."""
    if isinstance(model_or_graph, nir.NIRGraph):
        graph = model_or_graph
    else:
        from neuroadapt.export.nir.build import to_nir

        if dt is None:
            raise DataError("write_nir: dt (seconds) is required to convert a model")
        graph = to_nir(model_or_graph, dt, **to_nir_kwargs)
    path = Path(path)
    if not path.parent.is_dir():
        raise DataError(f"write_nir: folder {path.parent} does not exist")
    with atomic_path(path, suffix=".nir") as tmp:
        os.unlink(tmp)  # nir.write creates the file itself
        nir.write(tmp, graph)
    return str(path)


def read_nir(path) -> nir.NIRGraph:
    """Read a ``.nir`` file; anything that is not a valid NIR graph raises :class:`DataError`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"NIR file not found: {path}")
    try:
        graph = nir.read(str(path))
    except Exception as exc:  # h5py / nir raise many kinds (OSError, KeyError, ValueError, ...)
        raise DataError(f"{path} is not a valid NIR file ({type(exc).__name__}: {exc}); "
                        f"write it with nir.write or neuroadapt.export.nir.write_nir") from None
    if not isinstance(graph, nir.NIRGraph):
        raise DataError(f"{path} holds a single {type(graph).__name__} node, not a NIR graph")
    return graph
