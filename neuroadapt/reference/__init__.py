"""Independent references (Brian2 twins, NumPy equations) for neuroadapt's dynamics.

Nothing here imports neuroadapt's torch code: these are what the torch modules are
checked against.  Brian2 is imported lazily, so importing this package never needs it.
"""

from neuroadapt.reference.lif import (LEAKY_EQUATIONS, SYNAPTIC_EQUATIONS, compare,
                                      simulate_brian2, simulate_numpy)

__all__ = ["simulate_brian2", "simulate_numpy", "compare", "LEAKY_EQUATIONS",
           "SYNAPTIC_EQUATIONS"]
