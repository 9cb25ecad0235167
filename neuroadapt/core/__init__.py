"""Pure functions: one step of each dynamic, surrogate spikes, fused time scans.

No ``nn.Module`` lives here; modules in :mod:`neuroadapt.nn` are thin wrappers.
"""

from neuroadapt.core.lif import leaky_step, synaptic_step
from neuroadapt.core.scan import leaky_scan, linear_scan, synaptic_scan
from neuroadapt.core.surrogate import atan, fast_sigmoid, heaviside, surrogate_derivative

__all__ = ["leaky_step", "synaptic_step", "leaky_scan", "linear_scan", "synaptic_scan",
           "atan", "fast_sigmoid", "heaviside", "surrogate_derivative"]
