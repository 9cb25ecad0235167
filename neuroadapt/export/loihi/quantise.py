"""Quantise a trained :class:`~neuroadapt.engine.models.SpikingClassifier` to Loihi's formats.

Loihi's CUBA compartment (reference sheet §3.3; Lava's ``PyLifModelBitAcc``) holds a 24-bit
current ``u`` and voltage ``v``; synaptic input arrives as a sum of 8-bit weights shifted left
by 6; decays are 12-bit fractions of 4096; the threshold is a 17-bit mantissa shifted left by 6;
the bias a 13-bit signed mantissa shifted left by ``bias_exp = 6`` (what lava-dl's netx loader
uses).  One float layer maps to one integer layer with a single real scale ``s`` (float
membrane units -> weight units)::

    weight   = 2 * round(W * s / 2)            even integers in [-256, 254] (8-bit mantissa, exp 0)
    vThMant  = round(theta * s)                 v spikes when v > vThMant * 2**6
    bias     = round(b * s)                     13-bit signed; v += bias * 2**6 every step
    vDecay   = round((1 - beta) * 4096)         v <- rtz(v * (4096 - vDecay) / 4096) + u + bias
    iDecay   = 4096 (leaky: u is this step's input)  or  round((1 - alpha) * 4096) (synaptic)

so the integer voltage is ``v = 64 * s * m`` up to rounding: the scale is shared by the weights,
threshold and bias of a layer (the layer's "shared exponent", here any positive real because the
threshold absorbs it).  ``s`` is the largest value that puts the largest |weight| at 254 and keeps
the threshold (17 bits) and biases (13 bits) in range.  What does not fit is an error
(:class:`~neuroadapt.errors.InvalidInputError` / :class:`~neuroadapt.errors.UnsupportedOptionError`)
naming the layer and the field, raised before anything is written.

Mapping choices (docs/loihi.md):

* recurrent layers become netx ``dense_rec`` (feed-forward and recurrent weights share ``s``);
  the recurrent ``nn.Linear``'s bias joins the layer bias;
* Loihi resets ``v`` to 0 on a spike; a float layer with ``reset: subtract`` is exported as is
  (its reset differs: recorded as ``reset_mapped = "subtract->zero"``);
* a synaptic layer's bias enters the float current; on Loihi the bias enters the voltage, so it is
  exported as ``b / (1 - alpha)`` (exact in steady state; recorded as ``bias_mapped``);
* the non-spiking readout becomes a CUBA compartment with iDecay 4096 and the largest threshold
  (131071): it never spikes unless its voltage saturates; the exporter reads its voltage.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from neuroadapt.errors import InvalidInputError, ShapeError, UnsupportedOptionError

__all__ = ["LoihiLayer", "LoihiNet", "quantise_model", "quantise_layer", "decay_to_fixed", "decay_from_fixed",
           "W_MIN", "W_MAX", "VTH_MAX", "BIAS_MIN", "BIAS_MAX", "DECAY_UNITY"]

W_MIN, W_MAX = -256, 254          # even integers: lava-dl's 8-bit mantissa, weight exponent 0
VTH_MAX = 2 ** 17 - 1             # 17-bit unsigned threshold mantissa
BIAS_MIN, BIAS_MAX = -(2 ** 12), 2 ** 12 - 1   # 13-bit signed bias mantissa
DECAY_UNITY = 4096                # 12-bit decays: factor = (4096 - decay) / 4096
READOUT_VTH = VTH_MAX             # the readout compartment's threshold: as high as it goes
MIN_WEIGHT_LEVELS = 8             # below this the largest |weight| keeps < 3 bits: refuse


@dataclass
class LoihiLayer:
    """One netx ``dense`` / ``dense_rec`` layer with its CUBA neurons, in Loihi's integer formats."""

    name: str
    weight: np.ndarray                   # int64 (out, in), even values in [-256, 254]
    bias: np.ndarray                     # int64 (out,), 13-bit mantissa (v += bias << 6)
    i_decay: int                         # 0..4096
    v_decay: int                         # 0..4096
    v_th_mant: int                       # 0..131071
    weight_rec: Optional[np.ndarray] = None   # int64 (out, out) or None
    spiking: bool = True                 # False: the readout (its voltage is read)
    scale: float = 1.0                   # s: integer weight = s * float weight; v = 64 s m

    @property
    def n_in(self) -> int:
        return int(self.weight.shape[1])

    @property
    def n_out(self) -> int:
        return int(self.weight.shape[0])


@dataclass
class LoihiNet:
    """A stack of :class:`LoihiLayer` (input -> hidden ... -> readout)."""

    layers: List[LoihiLayer]
    n_inputs: int
    readout_mode: str = "mean"          # logits = mean (or max) over time of the readout voltage
    notes: dict = field(default_factory=dict)

    @property
    def n_spiking(self) -> int:
        return sum(1 for layer in self.layers if layer.spiking)

    @property
    def delay(self) -> int:
        """Steps from an input spike to the readout: one synaptic delay per layer."""
        return len(self.layers)


def decay_to_fixed(factor: float, what: str = "decay") -> int:
    """Per-step decay factor (beta, alpha in [0, 1]) -> Loihi's 12-bit decay ``round((1-f)*4096)``."""
    f = float(factor)
    if not math.isfinite(f):
        raise InvalidInputError(f"{what} is {f}; Loihi decays must be finite numbers in [0, 1]")
    if f < 0 or f > 1:
        raise InvalidInputError(f"{what} = {f} is outside [0, 1]; Loihi decays are fractions of 4096")
    return int(round((1.0 - f) * DECAY_UNITY))


def decay_from_fixed(decay: int) -> float:
    """Inverse of :func:`decay_to_fixed`: the per-step factor ``(4096 - decay) / 4096``."""
    return (DECAY_UNITY - int(decay)) / DECAY_UNITY


def _finite(name: str, what: str, arr: np.ndarray) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InvalidInputError(f"{name}: {what} holds {int(bad.sum())} non-finite value(s) "
                                f"(first at index {idx}: {arr[idx]}); retrain or fix the checkpoint "
                                "before exporting to Loihi")


def _scalar(name: str, what: str, value) -> float:
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    _finite(name, what, arr)
    if arr.size == 0:
        raise ShapeError(f"{name}: {what} is empty")
    if not np.all(arr == arr[0]):
        raise UnsupportedOptionError(f"{name}: {what} differs between neurons ({arr.min():g}..{arr.max():g}); "
                                     "Lava's LIF takes one value per layer (train with a shared value)")
    return float(arr[0])


def _even_round(x: np.ndarray) -> np.ndarray:
    return (2 * np.round(x / 2.0)).astype(np.int64)


def quantise_layer(name: str, weight, bias, *, beta: float, threshold: Optional[float], alpha: Optional[float] = None,
                   weight_rec=None, scale: Optional[float] = None, exact: bool = False) -> LoihiLayer:
    """Quantise one float layer (``threshold=None``: the non-spiking readout).

    ``scale`` fixes ``s`` (else the largest that fits); then weights that need more than the
    8-bit mantissa, and thresholds or biases outside their fields, raise
    :class:`~neuroadapt.errors.InvalidInputError`.  ``exact=True``: the same layer at the same
    scale without any rounding (float fields), for :func:`~neuroadapt.export.loihi.emulator.simulate_exact`.
    """
    W = np.asarray(weight, dtype=np.float64)
    if W.ndim != 2:
        raise ShapeError(f"{name}: weight must be 2-d (out, in), got shape {W.shape}")
    _finite(name, "weight", W)
    b = np.zeros(W.shape[0]) if bias is None else np.asarray(bias, dtype=np.float64).reshape(-1)
    if b.shape[0] != W.shape[0]:
        raise ShapeError(f"{name}: bias has {b.shape[0]} entries for {W.shape[0]} neurons")
    _finite(name, "bias", b)
    R = None
    if weight_rec is not None:
        R = np.asarray(weight_rec, dtype=np.float64)
        if R.shape != (W.shape[0], W.shape[0]):
            raise ShapeError(f"{name}: recurrent weight must be ({W.shape[0]}, {W.shape[0]}), got {R.shape}")
        _finite(name, "recurrent weight", R)
    v_decay = decay_to_fixed(beta, f"{name}: beta")
    i_decay = DECAY_UNITY if alpha is None else decay_to_fixed(alpha, f"{name}: alpha")
    spiking = threshold is not None
    if spiking:
        theta = float(threshold)
        if not math.isfinite(theta):
            raise InvalidInputError(f"{name}: threshold is {theta}; it must be a finite positive number")
        if theta <= 0:
            raise InvalidInputError(f"{name}: threshold {theta:g} is not positive; Loihi's threshold mantissa "
                                    "is unsigned (0..131071)")
    wmax = max(float(np.abs(W).max()), float(np.abs(R).max()) if R is not None else 0.0)
    if wmax == 0:
        raise InvalidInputError(f"{name}: all weights are zero; there is nothing to map to Loihi's 8-bit weights")
    bmax = float(np.abs(b).max()) if b.size else 0.0
    if scale is None:
        limits = [W_MAX / wmax]
        if spiking:
            limits.append((VTH_MAX + 0.49) / theta)
        if bmax > 0:
            limits.append((BIAS_MAX + 0.49) / bmax)
        s = min(limits)
        if s * wmax < MIN_WEIGHT_LEVELS:
            what = "threshold" if spiking and s == limits[1] else "bias"
            raise InvalidInputError(
                f"{name}: the {what} is too large next to the weights (largest |weight| {wmax:.3g}, threshold "
                f"{threshold}, largest |bias| {bmax:.3g}): fitting it in its field leaves the weights fewer than "
                f"{MIN_WEIGHT_LEVELS} integer levels; rescale the layer (weights up / threshold or bias down)")
    else:
        s = float(scale)
        if not (math.isfinite(s) and s > 0):
            raise InvalidInputError(f"{name}: scale must be a positive finite number, got {scale}")
    wff = float(np.abs(W).max())
    if wff * s < MIN_WEIGHT_LEVELS:
        raise InvalidInputError(
            f"{name}: at the layer's shared scale {s:.4g} the largest feed-forward weight ({wff:.3g}) "
            f"keeps fewer than {MIN_WEIGHT_LEVELS} integer levels: the recurrent weights or the threshold (largest "
            f"|value| {wmax:.3g}, threshold {threshold}) dominate the 8-bit range; rescale the layer")
    if exact:
        return LoihiLayer(name=name, weight=W * s, bias=b * s, weight_rec=None if R is None else R * s,
                          i_decay=DECAY_UNITY if alpha is None else (1.0 - float(alpha)) * DECAY_UNITY,
                          v_decay=(1.0 - float(beta)) * DECAY_UNITY,
                          v_th_mant=theta * s if spiking else float(READOUT_VTH), spiking=spiking, scale=s)
    Wq = _even_round(W * s)
    Rq = _even_round(R * s) if R is not None else None
    for what, q, f in (("weight", Wq, W), ("recurrent weight", Rq, R)):
        if q is None:
            continue
        if q.max() > W_MAX or q.min() < W_MIN:
            i = tuple(int(k) for k in np.unravel_index(int(np.argmax(np.abs(q))), q.shape))
            raise InvalidInputError(
                f"{name}: {what} {f[i]:.4g} at {i} becomes {int(q[i])} at scale {s:.4g}; Loihi's 8-bit weight "
                f"mantissa holds even integers in [{W_MIN}, {W_MAX}] (a smaller scale or weight clipping is needed)")
    bq = np.round(b * s).astype(np.int64)
    if bq.size and (bq.max() > BIAS_MAX or bq.min() < BIAS_MIN):
        i = int(np.argmax(np.abs(bq)))
        raise InvalidInputError(f"{name}: bias {b[i]:.4g} of neuron {i} becomes {int(bq[i])} at scale {s:.4g}; "
                                f"the 13-bit bias mantissa holds [{BIAS_MIN}, {BIAS_MAX}]")
    if spiking:
        vth = int(round(theta * s))
        if vth > VTH_MAX:
            raise InvalidInputError(f"{name}: threshold {theta:g} becomes {vth} at scale {s:.4g}; the 17-bit "
                                    f"threshold mantissa holds 0..{VTH_MAX}")
        if vth < 1:
            raise InvalidInputError(f"{name}: threshold {theta:g} rounds to 0 at scale {s:.4g}; it is below "
                                    "Loihi's resolution next to these weights")
    else:
        vth = READOUT_VTH
    return LoihiLayer(name=name, weight=Wq, bias=bq, i_decay=i_decay, v_decay=v_decay, v_th_mant=vth,
                      weight_rec=Rq, spiking=spiking, scale=s)


def _tensor(x) -> np.ndarray:
    return x.detach().cpu().double().numpy()


def quantise_model(model, exact: bool = False) -> LoihiNet:
    """A :class:`LoihiNet` for a ``SpikingClassifier`` (hidden ``LIFLayer`` stack + ``LIReadout``).

    Raises :class:`~neuroadapt.errors.UnsupportedOptionError` for anything Loihi's CUBA neuron
    cannot hold (graded spikes, convolutional recurrence, per-neuron decays or thresholds,
    other layer types), naming the layer.  ``exact=True``: the unrounded twin (same mapping and
    scales, float fields) that separates Loihi's semantics from its rounding.
    """
    from torch import nn

    layers_in = getattr(model, "layers", None)
    readout = getattr(model, "readout", None)
    if layers_in is None or readout is None or not hasattr(readout, "fc"):
        raise UnsupportedOptionError(f"Loihi export takes a SpikingClassifier (LIFLayer stack + LIReadout), "
                                     f"got {type(model).__name__}")
    out: List[LoihiLayer] = []
    notes = {"reset_mapped": [], "bias_mapped": []}
    width = int(model.n_inputs)
    for i, layer in enumerate(layers_in):
        name = f"hidden{i}"
        fc, neuron = getattr(layer, "fc", None), getattr(layer, "neuron", None)
        if not isinstance(fc, nn.Linear) or neuron is None:
            raise UnsupportedOptionError(f"{name}: {type(layer).__name__} is not a Linear + LIF layer; "
                                         "Loihi export takes LIFLayer only")
        if fc.in_features != width:
            raise ShapeError(f"{name}: expects {fc.in_features} inputs but the previous layer has {width}")
        g = getattr(neuron, "graded_spikes_factor", None)
        if g is not None and not bool((g == 1).all()):
            raise UnsupportedOptionError(f"{name}: graded spikes are not supported by the Loihi export")
        if getattr(neuron, "state_quant", False) or getattr(neuron, "inhibition", False):
            raise UnsupportedOptionError(f"{name}: state_quant / inhibition have no Loihi CUBA equivalent")
        beta = _scalar(name, "beta", _tensor(neuron.beta).clip(0, 1))
        theta = _scalar(name, "threshold", _tensor(neuron.threshold))
        alpha = None
        if hasattr(neuron, "alpha"):
            alpha = _scalar(name, "alpha", _tensor(neuron.alpha).clip(0, 1))
        W = _tensor(fc.weight)
        b = _tensor(fc.bias) if fc.bias is not None else np.zeros(W.shape[0])
        R = None
        if getattr(layer, "recurrent", False):
            if getattr(neuron, "all_to_all", True):
                rec = getattr(neuron, "recurrent", None)
                if not isinstance(rec, nn.Linear):
                    raise UnsupportedOptionError(f"{name}: convolutional recurrence is not supported by the "
                                                 "Loihi export")
                R = _tensor(rec.weight)
                if rec.bias is not None:
                    b = b + _tensor(rec.bias)
            else:
                R = np.diag(np.broadcast_to(_tensor(neuron.V).reshape(-1), (W.shape[0],)).copy())
        if alpha is not None and np.any(b != 0):
            # float: the bias enters the synaptic current; Loihi adds the bias to v
            b = b / max(1.0 - alpha, 1e-12)
            notes["bias_mapped"].append(f"{name}: synaptic bias b -> b/(1-alpha) on v (steady state)")
        reset = str(getattr(neuron, "reset_mechanism", "subtract"))
        if reset == "none":
            raise UnsupportedOptionError(f"{name}: reset 'none' cannot run on Loihi (v always resets to 0 on a "
                                         "spike); train with reset: zero or subtract")
        delayed = bool(getattr(neuron, "reset_delay", True))
        if reset == "subtract" and alpha is None and delayed and (beta < 1 or not np.any(b)):
            # subtract reset, exactly: the CUBA current u is the membrane (iDecay from beta), v has no
            # memory (vDecay 4096: v = u + bias), and the reset is a self-connection of -theta in the
            # recurrent weights, which act one step later -- snnTorch's r_t = s_{t-1}
            R = (np.zeros((W.shape[0], W.shape[0])) if R is None else R) - theta * np.eye(W.shape[0])
            b = b / (1.0 - beta) if np.any(b) else b
            notes["reset_mapped"].append(f"{name}: subtract->current (u is the membrane, -theta self-connection)")
            if np.any(b):
                notes["bias_mapped"].append(f"{name}: bias b -> b/(1-beta) on v (steady state of the membrane's "
                                            "share)")
            out.append(quantise_layer(name, W, b, beta=0.0, threshold=theta, alpha=beta, weight_rec=R,
                                      exact=exact))
            width = fc.out_features
            continue
        if reset != "zero":
            notes["reset_mapped"].append(f"{name}: {reset}->zero")
        elif delayed and (R is not None or alpha is not None):
            # snnTorch zeroes the whole next step of these neurons (input included); Loihi zeroes v
            # at the spike and integrates the next input
            notes["reset_mapped"].append(f"{name}: zero(next step)->zero(at spike)")
        out.append(quantise_layer(name, W, b, beta=beta, threshold=theta, alpha=alpha, weight_rec=R, exact=exact))
        width = fc.out_features
    rfc = readout.fc
    if rfc.in_features != width:
        raise ShapeError(f"readout: expects {rfc.in_features} inputs but the previous layer has {width}")
    rbeta = _scalar("readout", "beta", _tensor(readout.beta).clip(0, 1))
    rb = _tensor(rfc.bias) if rfc.bias is not None else np.zeros(rfc.out_features)
    out.append(quantise_layer("readout", _tensor(rfc.weight), rb, beta=rbeta, threshold=None, exact=exact))
    mode = getattr(model, "readout_mode", "mean")
    return LoihiNet(layers=out, n_inputs=int(model.n_inputs), readout_mode=mode, notes=notes)
