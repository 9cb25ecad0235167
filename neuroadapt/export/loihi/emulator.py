"""Bit-exact NumPy emulator of a netx network on Loihi's integer CUBA neurons (as Lava runs it).

It reproduces, step for step, what ``netx.hdf5.Network`` builds from the file and what Lava's
bit-accurate CPU models (``PyDenseModelBitAcc``, ``PyLifModelBitAcc``; ``Loihi2SimCfg`` with
``select_tag="fixed_pt"``) compute (reference sheet §3.3), for a whole batch at once:

* **loading** (:func:`netx_synapse_weights`): netx re-optimises each layer's weights
  (``optimize_weight_bits``: a left shift by ``scale_bits`` with ``weight_exp = -scale_bits``;
  feed-forward and recurrent weights of a ``dense_rec`` layer jointly), then each Lava ``Dense``
  clips them to the 8-bit range of its own sign mode and zeroes the low bits it cannot hold;
  for the even integers in [-256, 254] neuroadapt writes this is lossless (tested);
* **synapse**: ``a[t] = (sum_j W_ij s_j[t-1]) >> scale_bits``, one step late (the ``a_buff`` of
  each ``Dense``); a recurrent layer adds its own spikes of the previous step through
  ``weight_rec`` the same way;
* **neuron** (``iDecay``/``vDecay`` from the file, ``du = iDecay - 1`` as netx sets it)::

      u <- wrap24( rtz(u * (4096 - iDecay)) + (a << 6) )
      v <- clip( rtz(v * (4096 - vDecay)) + u + (bias << 6), -(2**23 - 1), 2**23 - 1 )
      s  = v > vThMant << 6;   v[s] = 0

  with ``rtz(z) = sign(z) * (|z| >> 12)`` and Lava's wrap (values above 2**23 lose 2**24, values
  at or below -2**23 gain 2**24).

Time: input spike ``x[k]`` enters at Lava step ``k + 1``; layer ``j`` (1-based) shows the response
to it at step ``k + 1 + j``.  :func:`emulate` runs ``T + n_layers`` steps (zero input at the end)
and returns everything time-indexed as Lava's step minus one.

The synaptic sums run as float matrix products on spikes: float32 where every partial sum stays
below 2**24 (checked per matrix from the weights and the largest input count), else float64 (below
2**53), so they are exact integers either way.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

from neuroadapt.errors import InvalidInputError, ShapeError
from neuroadapt.export.loihi.quantise import LoihiLayer, LoihiNet

__all__ = ["emulate", "Emulator", "check_inputs", "input_message_bits", "EmulatorResult", "netx_synapse_weights",
           "readout_logits", "aligned", "simulate_exact"]

UV_MAX = 2 ** 23          # 24-bit state: wrap (u) / clip (v) limits
DECAY_SHIFT = 12
ACT_SHIFT = 6
BIAS_EXP = 6
VTH_SHIFT = 6


def _sign_mode(w: np.ndarray) -> str:
    """lava.utils.weightutils.determine_sign_mode."""
    if w.min() >= 0:
        return "excitatory"
    if w.max() <= 0:
        return "inhibitory"
    return "mixed"


def _optimize_weight_bits(weight: np.ndarray) -> Tuple[np.ndarray, int, int]:
    """lava-dl netx ``utils.optimize_weight_bits``: (shifted weights, num_weight_bits, weight_exp)."""
    weight = np.asarray(weight, dtype=np.int64)
    max_w, min_w = weight.max(), weight.min()
    if max_w > 254 and min_w < 0:
        weight = np.clip(weight, -256, 254)
        max_w = weight.max()
    if min_w < -256 and max_w > 0:
        weight = np.clip(weight, -256, 254)
        min_w = weight.min()
    if max_w < 0:
        mode, signed = "inhibitory", 0
        scale = -256 / min_w
    elif min_w >= 0:
        mode, signed = "excitatory", 0
        if max_w == 0:
            raise InvalidInputError("an all-zero weight matrix cannot be loaded by netx (its weight optimiser "
                                    "divides by the largest weight)")
        scale = 255 / max_w
    else:
        mode, signed = "mixed", 1
        pos = 127 / max_w if max_w > 0 else np.inf
        scale = min(pos, -128 / min_w)
    scale_bits = int(np.floor(np.log2(scale))) + signed
    n = 8
    while n > 0 and np.sum(np.abs(weight / 2 ** n - np.round(weight / 2 ** n))) != 0:
        n -= 1
    n -= signed
    num_weight_bits = 8 - scale_bits - n
    shifted = np.left_shift(weight.astype(np.int32), scale_bits).astype(np.int64)
    return shifted, int(num_weight_bits), int(-scale_bits)


def _dense_load(w: np.ndarray, num_weight_bits: int) -> np.ndarray:
    """What Lava's bit-accurate ``Dense`` does to its weights on the first step (clip, truncate)."""
    mode = _sign_mode(w)
    w = w.astype(np.int64)
    if mode == "inhibitory":
        w = -w
    mixed = int(mode == "mixed")
    w = np.clip(w, -(2 ** 8) * mixed, 2 ** 8 - 1)
    k = 8 - num_weight_bits + mixed
    w = np.left_shift(np.right_shift(w, k), k)
    return -w if mode == "inhibitory" else w


def netx_synapse_weights(layer: LoihiLayer) -> List[Tuple[np.ndarray, int]]:
    """``[(W_ff, exp), (W_rec, exp)]`` (one entry without recurrence): the integer weights and
    weight exponent Lava's ``Dense`` processes hold after netx loaded ``layer``."""
    if layer.weight_rec is not None:
        joint = np.hstack([layer.weight, layer.weight_rec])
        shifted, nbits, exp = _optimize_weight_bits(joint)
        parts = [shifted[:, :layer.n_in], shifted[:, layer.n_in:]]
    else:
        shifted, nbits, exp = _optimize_weight_bits(layer.weight)
        parts = [shifted]
    return [(_dense_load(p, nbits), exp) for p in parts]


def _rtz_decay(x: np.ndarray, decay: int) -> np.ndarray:
    """``sign(z) * (|z| >> 12)`` for ``z = x * (4096 - decay)``: an arithmetic shift after adding
    4095 to negative values (the usual round-toward-zero division by a power of two)."""
    z = x * (4096 - decay)
    return np.right_shift(z + (np.right_shift(z, 63) & 4095), DECAY_SHIFT)


def _shift(a: np.ndarray, exp: int) -> np.ndarray:
    return np.left_shift(a, exp) if exp > 0 else np.right_shift(a, -exp)


@dataclass
class EmulatorResult:
    """Per layer, time-major over Lava's steps (index = step - 1): ``spikes[l]`` (T', B, n) bool for
    every layer (the readout's are all False unless its voltage saturates), ``v[l]`` the voltage
    (T', B, n) int64 where recorded (``record_v``; always for the readout)."""

    spikes: List[np.ndarray]
    v: List[np.ndarray | None]
    n_steps: int


def check_inputs(x, n_inputs: int, who: str = "Loihi emulator") -> np.ndarray:
    """Time-major input spikes ``(T, B, n_inputs)`` as float64: binary spikes, or non-negative
    integer spike counts (graded input spikes: netx ``input_message_bits`` > 0)."""
    x = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    if x.ndim != 3:
        raise ShapeError(f"{who} expects time-major input spikes (T, B, {n_inputs}), got shape {x.shape}")
    if x.shape[-1] != n_inputs:
        raise ShapeError(f"{who}: the network takes {n_inputs} inputs, got shape {x.shape}")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise InvalidInputError(f"{who}: the input spikes hold NaN/inf")
    if x.size and (x.min() < 0 or np.any(x != np.round(x))):
        raise InvalidInputError(f"{who}: inputs must be spikes (0/1) or non-negative integer spike counts; "
                                f"found values in [{x.min():g}, {x.max():g}] that are not")
    if x.size and x.max() >= 2 ** 24:
        raise InvalidInputError(f"{who}: spike counts up to {x.max():g} exceed a 24-bit graded spike")
    return x


def input_message_bits(x: np.ndarray) -> int:
    """0 for binary spikes, else the bits a graded input spike needs for the largest count."""
    m = int(np.max(x)) if np.size(x) else 0
    return 0 if m <= 1 else int(m).bit_length()


def _exact_dtype(w: np.ndarray, max_in: float):
    """float32 when every partial sum of ``spikes @ w`` stays below 2**24 (exact), else float64."""
    bound = float(np.abs(w).sum(axis=0).max()) * max(float(max_in), 1.0) if w.size else 0.0
    return np.float32 if bound < 2 ** 24 else np.float64


class Emulator:
    """A network loaded once (netx's weight optimisation, matrices in exact float types), then
    :meth:`run` on any number of input batches.  :func:`emulate` is ``Emulator(net).run(x)``."""

    def __init__(self, net: LoihiNet, threads: int | None = 1):
        self.net, self.threads = net, threads
        self.syn = [netx_synapse_weights(layer) for layer in net.layers]
        self._mats = {}

    def _matrices(self, max_in: float):
        """(in, out) matrices for ``spikes @ W^T`` in a float type whose sums are exact integers."""
        key = float(max_in)
        if key not in self._mats:
            wt = []
            for i, s in enumerate(self.syn):
                entry = []
                for k, (w, e) in enumerate(s):
                    dt = _exact_dtype(w.T, max_in if (i == 0 and k == 0) else 1.0)
                    entry.append((np.ascontiguousarray(w.T.astype(dt)), e, dt))
                wt.append(entry)
            self._mats[key] = wt
        return self._mats[key]

    def run(self, spikes, record_v: bool = False, extra_steps: int | None = None) -> EmulatorResult:
        x = check_inputs(spikes, self.net.n_inputs)
        wt = self._matrices(float(x.max()) if x.size else 1.0)
        if self.threads is None:
            return _emulate(self.net, wt, x, record_v, extra_steps)
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=int(self.threads)):
            return _emulate(self.net, wt, x, record_v, extra_steps)


def emulate(net: LoihiNet, spikes, record_v: bool = False, extra_steps: int | None = None,
            threads: int | None = 1) -> EmulatorResult:
    """Run ``net`` on input spikes ``(T, B, n_inputs)`` for ``T + net.delay`` steps (or
    ``T + extra_steps``) exactly as Lava's fixed-point models do.  ``threads``: BLAS threads for
    the synaptic sums (default 1: the matrices are small; ``None`` leaves BLAS as configured)."""
    return Emulator(net, threads).run(spikes, record_v, extra_steps)


def _emulate(net: LoihiNet, wt, x: np.ndarray, record_v: bool, extra_steps: int | None) -> EmulatorResult:
    T, B, _ = x.shape
    n_steps = T + (net.delay if extra_steps is None else int(extra_steps))
    L = len(net.layers)
    # the input layer's feed-forward drive for all steps at once (one matrix product)
    w0, e0, dt0 = wt[0][0]
    drive0 = np.zeros((n_steps, B, net.layers[0].n_out), np.int64)
    if T:
        drive0[:T] = _shift(np.rint(x.reshape(T * B, -1).astype(dt0) @ w0).astype(np.int64), e0
                            ).reshape(T, B, -1)
    u = [np.zeros((B, layer.n_out), np.int64) for layer in net.layers]
    v = [np.zeros((B, layer.n_out), np.int64) for layer in net.layers]
    a_buf = [np.zeros((B, layer.n_out), np.int64) for layer in net.layers]   # sum of the layer's Dense a_buff
    bias = [layer.bias.astype(np.int64) << BIAS_EXP for layer in net.layers]
    vth = [np.int64(layer.v_th_mant) << VTH_SHIFT for layer in net.layers]
    out_s = [np.zeros((n_steps, B, layer.n_out), bool) for layer in net.layers]
    out_v = [np.zeros((n_steps, B, layer.n_out), np.int64) if (record_v or i == L - 1) else None
             for i, layer in enumerate(net.layers)]
    for t in range(n_steps):
        # 1. neurons: step t's input is what the synapses accumulated at step t-1
        cur_s = []
        for i, layer in enumerate(net.layers):
            cur = np.left_shift(a_buf[i], ACT_SHIFT)
            if layer.i_decay != 4096:          # iDecay 4096: the current keeps nothing (factor 0)
                cur += _rtz_decay(u[i], layer.i_decay)
            if cur.max(initial=0) > UV_MAX or cur.min(initial=0) <= -UV_MAX:
                wrapped = np.where(cur > UV_MAX, cur - 2 * UV_MAX, cur)
                cur = np.where(wrapped <= -UV_MAX, cur + 2 * UV_MAX, wrapped)
            u[i] = cur
            volt = _rtz_decay(v[i], layer.v_decay) + cur + bias[i]
            np.clip(volt, -UV_MAX + 1, UV_MAX - 1, out=volt)
            s = volt > vth[i]
            volt[s] = 0
            v[i] = volt
            out_s[i][t] = s
            if out_v[i] is not None:
                out_v[i][t] = volt
            cur_s.append(s)
        # 2. synapses: accumulate this step's spikes (input, previous layer, own) for step t+1
        for i, layer in enumerate(net.layers):
            if i == 0:
                acc = drive0[t].copy()
            else:
                w, e, dt = wt[i][0]
                acc = _shift(np.rint(cur_s[i - 1].astype(dt) @ w).astype(np.int64), e)
            if layer.weight_rec is not None:
                w, e, dt = wt[i][1]
                acc += _shift(np.rint(cur_s[i].astype(dt) @ w).astype(np.int64), e)
            a_buf[i] = acc
    return EmulatorResult(spikes=out_s, v=out_v, n_steps=n_steps)


def simulate_exact(net: LoihiNet, spikes) -> EmulatorResult:
    """Loihi's semantics without its rounding: the CUBA update, zero reset at the spike and one
    synaptic delay per layer, in float64 with no rtz, wrap or clip, on the unrounded twin from
    ``quantise_model(model, exact=True)``.  Same time axis as :func:`emulate`."""
    x = check_inputs(spikes, net.n_inputs)
    T, B, _ = x.shape
    n_steps = T + net.delay
    zeros = [np.zeros((B, layer.n_out)) for layer in net.layers]
    u, v, a_buf = list(zeros), list(zeros), list(zeros)
    out_s = [np.zeros((n_steps, B, layer.n_out), bool) for layer in net.layers]
    out_v = [None] * (len(net.layers) - 1) + [np.zeros((n_steps, B, net.layers[-1].n_out))]
    for t in range(n_steps):
        cur_s = []
        for i, layer in enumerate(net.layers):
            u[i] = u[i] * (1 - layer.i_decay / 4096) + a_buf[i] * 2 ** ACT_SHIFT
            volt = v[i] * (1 - layer.v_decay / 4096) + u[i] + layer.bias * 2 ** BIAS_EXP
            s = volt > layer.v_th_mant * 2 ** VTH_SHIFT
            volt[s] = 0
            v[i] = volt
            out_s[i][t] = s
            if out_v[i] is not None:
                out_v[i][t] = volt
            cur_s.append(s.astype(np.float64))
        for i, layer in enumerate(net.layers):
            pre = (x[t] if t < T else np.zeros_like(x[0])) if i == 0 else cur_s[i - 1]
            acc = pre @ np.asarray(layer.weight, np.float64).T
            if layer.weight_rec is not None:
                acc = acc + cur_s[i] @ np.asarray(layer.weight_rec, np.float64).T
            a_buf[i] = acc
    return EmulatorResult(spikes=out_s, v=out_v, n_steps=n_steps)


def aligned(net: LoihiNet, series: np.ndarray, layer_index: int, T: int) -> np.ndarray:
    """The ``T`` steps of a layer's series (time-major, Lava step - 1) that answer input steps
    ``0 .. T-1`` (layer ``j`` = ``layer_index + 1`` lags its input by ``j`` steps)."""
    lag = layer_index + 1
    return series[lag:lag + T]


def readout_logits(net: LoihiNet, result: EmulatorResult, T: int) -> np.ndarray:
    """Logits (B, n_classes) in float units: mean (or max) over the ``T`` aligned steps of the
    readout voltage divided by ``64 * scale``."""
    ro = net.layers[-1]
    v = aligned(net, result.v[-1], len(net.layers) - 1, T).astype(np.float64) / (64.0 * ro.scale)
    return v.mean(0) if net.readout_mode == "mean" else v.max(0)
