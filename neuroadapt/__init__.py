"""neuroadapt: biologically inspired spiking networks, checked against independent references.

Layers (dependencies point one way): ``cli -> engine -> learn/export/data -> nn -> core``;
``reference`` depends on ``core`` only for parameters.
"""

__version__ = "0.1.0"

from neuroadapt import errors  # noqa: F401  (cheap, no torch import)
