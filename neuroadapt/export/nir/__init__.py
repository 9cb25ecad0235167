"""NIR (Neuromorphic Intermediate Representation) export and import.

* :func:`to_nir` -- neuroadapt / snnTorch model -> ``nir.NIRGraph`` (exact forward-Euler forms);
* :func:`write_nir` / :func:`read_nir` -- ``.nir`` files, written atomically;
* :func:`from_nir` -- any NIR graph (ours, Norse's, snnTorch's, ...) -> a runnable module on
  ``(T, B, ...)`` input;
* :func:`export_model` -- the ``neuroadapt export --to nir`` target (``model.nir`` + a report;
  ``verify=True`` runs the file through Norse's ``from_nir`` and through :func:`from_nir`).

Parameter conventions: :mod:`neuroadapt.export.nir.params`; docs/export.md.
"""
from neuroadapt.export.nir.build import to_nir
from neuroadapt.export.nir.io import read_nir, write_nir
from neuroadapt.export.nir.params import to_continuous, to_discrete
from neuroadapt.export.nir.runtime import NIRModule, from_nir
from neuroadapt.export.nir.verify import export_model, run_norse, run_source

__all__ = ["to_nir", "write_nir", "read_nir", "from_nir", "NIRModule", "to_continuous", "to_discrete",
           "export_model", "run_norse", "run_source"]
