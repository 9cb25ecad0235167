"""snnTorch-compatible modules built on :mod:`neuroadapt.core`."""

from neuroadapt.nn.amsu import AMSU
from neuroadapt.nn.layers import LIFLayer, LIReadout
from neuroadapt.nn.elm import ELM, ELMState
from neuroadapt.nn.neurons import Leaky, RLeaky, RSynaptic, Synaptic

__all__ = ["Leaky", "Synaptic", "RLeaky", "RSynaptic", "LIFLayer", "LIReadout", "ELM", "ELMState", "AMSU"]
