"""snnTorch-compatible neurons whose sequence path is neuroadapt's fused time scan.

``Leaky``, ``Synaptic``, ``RLeaky`` and ``RSynaptic`` subclass their snnTorch namesakes, so
they take the same constructor arguments, keep the same buffers/parameters (``beta``,
``threshold``, ``alpha``, ``recurrent``/``V``), and work with snnTorch's utilities
(``snntorch.utils.reset``, ``init_hidden``, ``spikeplot``, ``snntorch.functional`` losses).
Step by step (``spk, mem = lif(cur, mem)``) they compute exactly what snnTorch computes.

What they add: ``forward_sequence(cur)`` on a time-major ``(T, B, N)`` input current runs
all ``T`` steps in one fused scan with its own backward pass (:mod:`neuroadapt.core.scan`,
:mod:`neuroadapt.core.recurrent`).  Configurations the scan does not cover (``state_quant``,
``inhibition``, ``reset_delay=False`` except a zero reset in ``RLeaky``, graded spikes in
recurrent layers, convolutional recurrence) fall back to stepping ``forward`` in a loop, with the same results.

The default surrogate is neuroadapt's ``atan`` (the same function as snnTorch's default, but
it keeps the input dtype, so float64 models stay float64).
"""

from __future__ import annotations

import snntorch as snn
import torch

from neuroadapt.core.lif import leaky_step, synaptic_step
from neuroadapt.core.recurrent import recurrent_scan
from neuroadapt.core.scan import leaky_scan, synaptic_scan
from neuroadapt.core.surrogate import atan
from neuroadapt.errors import ShapeError


def _check_sequence(x: torch.Tensor, who: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ShapeError(f"{who}.forward_sequence expects a time-major tensor (T, B, N), got {shape}")


class _SequenceMixin:
    """Shared logic: when can the fused scan run, and the step-loop fallback."""

    def _fusable(self, recurrent: bool = False, immediate_zero: bool = False) -> bool:
        """``immediate_zero``: the caller's scan also runs ``reset_delay=False`` with a zero reset."""
        if self.state_quant or self.inhibition:
            return False
        if not getattr(self, "reset_delay", True) and not (immediate_zero and self.reset_mechanism == "zero"):
            return False
        if recurrent and (self.graded_spikes_factor.requires_grad or
                          bool((self.graded_spikes_factor != 1).any())):
            return False
        return True

    def _graded(self, spk: torch.Tensor) -> torch.Tensor:
        g = self.graded_spikes_factor
        if not g.requires_grad and bool((g == 1).all()):
            return spk
        return spk * g

    def _step_loop(self, x: torch.Tensor, *state):
        """Fallback: snnTorch-style stepping, outputs stacked over time.  A sequence without a
        given state starts from zero, as the fused scans do (snnTorch's ``forward`` would take
        the state its last call left behind: the previous batch's, with its autograd graph)."""
        if all(s is None for s in state):
            state = tuple(torch.zeros_like(x[0]) for _ in state)
        init_hidden, output = self.init_hidden, self.output
        self.init_hidden, self.output = False, False
        try:
            outs = []
            for t in range(x.shape[0]):
                res = self.forward(x[t], *state)
                outs.append(res)
                state = tuple(res[1:]) if not isinstance(self, (RLeaky, RSynaptic)) else (res[0], *res[1:])
        finally:
            self.init_hidden, self.output = init_hidden, output
        return tuple(torch.stack(o) for o in zip(*outs))


class Leaky(_SequenceMixin, snn.Leaky):
    """First-order leaky integrate-and-fire neuron (snnTorch ``Leaky`` semantics)."""

    def __init__(self, beta, threshold=1.0, spike_grad=None, *args, **kwargs):
        super().__init__(beta, threshold, spike_grad or atan(), *args, **kwargs)

    def forward(self, input_, mem=None):
        if not self._fusable():
            return super().forward(input_, mem)
        if mem is not None:
            if self.init_hidden:
                raise TypeError("`mem` should not be passed as an argument while `init_hidden=True`")
            self.mem = mem
        if self.mem.shape != input_.shape:
            self.mem = torch.zeros_like(input_)
        spk, self.mem = leaky_step(input_, self.mem, self.beta.clamp(0, 1), self.threshold,
                                   self.reset_mechanism, self.spike_grad)
        spk = self._graded(spk)
        if self.init_hidden and not self.output:
            return spk
        return spk, self.mem

    def forward_sequence(self, input_, mem=None):
        """All time steps of ``input_`` ``(T, B, N)`` at once. Returns ``(spk, mem)`` of that shape."""
        _check_sequence(input_, type(self).__name__)
        if mem is None and self.init_hidden and self.mem.shape == input_.shape[1:]:
            mem = self.mem
        if not self._fusable():
            return self._step_loop(input_, mem)
        spk, mems = leaky_scan(input_, self.beta.clamp(0, 1), self.threshold, mem,
                               reset=self.reset_mechanism, spike_fn=self.spike_grad)
        if self.init_hidden:
            self.mem = mems[-1]
        return self._graded(spk), mems


class Synaptic(_SequenceMixin, snn.Synaptic):
    """Current-based LIF neuron (snnTorch ``Synaptic``, NIR ``CubaLIF``)."""

    def __init__(self, alpha, beta, threshold=1.0, spike_grad=None, *args, **kwargs):
        super().__init__(alpha, beta, threshold, spike_grad or atan(), *args, **kwargs)

    def forward(self, input_, syn=None, mem=None):
        if not self._fusable():
            return super().forward(input_, syn, mem)
        if self.init_hidden and (syn is not None or mem is not None):
            raise TypeError("`mem` or `syn` should not be passed as an argument while `init_hidden=True`")
        if syn is not None:
            self.syn = syn
        if mem is not None:
            self.mem = mem
        if self.syn.shape != input_.shape:
            self.syn = torch.zeros_like(input_)
        if self.mem.shape != input_.shape:
            self.mem = torch.zeros_like(input_)
        spk, self.syn, self.mem = synaptic_step(input_, self.syn, self.mem, self.alpha.clamp(0, 1),
                                                self.beta.clamp(0, 1), self.threshold,
                                                self.reset_mechanism, self.spike_grad)
        spk = self._graded(spk)
        if self.init_hidden and not self.output:
            return spk
        return spk, self.syn, self.mem

    def forward_sequence(self, input_, syn=None, mem=None):
        """All time steps at once. Returns ``(spk, syn, mem)``, each ``(T, B, N)``."""
        _check_sequence(input_, type(self).__name__)
        if self.init_hidden and syn is None and mem is None and self.mem.shape == input_.shape[1:]:
            syn, mem = self.syn, self.mem
        if not self._fusable():
            return self._step_loop(input_, syn, mem)
        spk, syns, mems = synaptic_scan(input_, self.alpha.clamp(0, 1), self.beta.clamp(0, 1),
                                        self.threshold, syn, mem, reset=self.reset_mechanism,
                                        spike_fn=self.spike_grad)
        if self.init_hidden:
            self.syn, self.mem = syns[-1], mems[-1]
        return self._graded(spk), syns, mems


class _RecurrentMixin(_SequenceMixin):
    def _recurrent_args(self):
        if self.all_to_all:
            if not isinstance(self.recurrent, torch.nn.Linear):
                return None  # convolutional recurrence: step loop
            return self.recurrent.weight, self.recurrent.bias, False
        return self.V, None, True


class RLeaky(_RecurrentMixin, snn.RLeaky):
    """Recurrent leaky neuron (snnTorch ``RLeaky``): ``spk, mem = rlif(cur, spk, mem)``."""

    def __init__(self, beta, V=1.0, all_to_all=True, linear_features=None, conv2d_channels=None,
                 kernel_size=None, threshold=1.0, spike_grad=None, *args, **kwargs):
        super().__init__(beta, V, all_to_all, linear_features, conv2d_channels, kernel_size,
                         threshold, spike_grad or atan(), *args, **kwargs)

    def forward_sequence(self, input_, spk=None, mem=None):
        """All time steps at once. Returns ``(spk, mem)``, each ``(T, B, N)``."""
        _check_sequence(input_, type(self).__name__)
        if self.init_hidden and spk is None and mem is None and self.mem.shape == input_.shape[1:]:
            spk, mem = self.spk, self.mem
        rec = self._recurrent_args()
        if rec is None or input_.dim() != 3 or not self._fusable(recurrent=True, immediate_zero=True):
            return self._step_loop(input_, spk, mem)
        W, b, one_to_one = rec
        reset = self.reset_mechanism if self.reset_delay else "zero_now"
        spks, mems = recurrent_scan(input_, W, b, self.beta.clamp(0, 1), self.threshold, mem0=mem,
                                    spk0=spk, reset=reset, one_to_one=one_to_one,
                                    spike_fn=self.spike_grad)
        if self.init_hidden:
            self.spk, self.mem = spks[-1], mems[-1]
        return spks, mems


class RSynaptic(_RecurrentMixin, snn.RSynaptic):
    """Recurrent current-based neuron (snnTorch ``RSynaptic``): ``spk, syn, mem = r(cur, spk, syn, mem)``."""

    def __init__(self, alpha, beta, V=1.0, all_to_all=True, linear_features=None, conv2d_channels=None,
                 kernel_size=None, threshold=1.0, spike_grad=None, *args, **kwargs):
        super().__init__(alpha, beta, V, all_to_all, linear_features, conv2d_channels, kernel_size,
                         threshold, spike_grad or atan(), *args, **kwargs)

    def forward_sequence(self, input_, spk=None, syn=None, mem=None):
        """All time steps at once. Returns ``(spk, syn, mem)``, each ``(T, B, N)``."""
        _check_sequence(input_, type(self).__name__)
        if self.init_hidden and spk is None and mem is None and self.mem.shape == input_.shape[1:]:
            spk, syn, mem = self.spk, self.syn, self.mem
        rec = self._recurrent_args()
        if rec is None or input_.dim() != 3 or not self._fusable(recurrent=True):
            return self._step_loop(input_, spk, syn, mem)
        W, b, one_to_one = rec
        spks, syns, mems = recurrent_scan(input_, W, b, self.beta.clamp(0, 1), self.threshold,
                                          alpha=self.alpha.clamp(0, 1), mem0=mem, spk0=spk, syn0=syn,
                                          reset=self.reset_mechanism, one_to_one=one_to_one,
                                          spike_fn=self.spike_grad)
        if self.init_hidden:
            self.spk, self.syn, self.mem = spks[-1], syns[-1], mems[-1]
        return spks, syns, mems
