"""Audio augmentation for spoken-digit data sets; every random draw comes from a NumPy Generator.

Functions (all take and return float64 mono waves):

* :func:`add_noise` -- background noise at a given SNR (``white``, ``pink`` (1/f power), or
  ``babble``: a sum of several other utterances at random offsets). The SNR is exact:
  ``10 log10(P_speech / P_noise)`` with ``P`` the mean power over the speech segment and over
  the noise, so the measured SNR equals the requested one up to float rounding.
* :func:`reverberate` -- convolution with a synthetic room impulse response: a direct path plus
  Gaussian noise with an exponentially decaying envelope (``RT60`` = time to decay by 60 dB),
  low-passed a little more as it decays (air/wall absorption), mixed at a direct-to-reverberant
  ratio.
* :func:`place` -- onset jitter: the word is put at a given onset inside a fixed-length window.
* :func:`apply_gain` -- level change in dB.

:class:`Augmentation` holds the ranges (onset, SNR, noise kinds, reverberation probability and
RT60, gain, per-utterance speed and pitch perturbation) and draws one utterance's settings
(:meth:`Augmentation.draw`); ``make_shd`` applies them. ``Augmentation.none()`` turns everything
off (a clean, onset-aligned set).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import signal

from neuroadapt.errors import InvalidInputError

__all__ = [
    "NOISE_KINDS",
    "white_noise",
    "pink_noise",
    "babble_noise",
    "add_noise",
    "synthetic_rir",
    "reverberate",
    "place",
    "apply_gain",
    "Augmentation",
]

NOISE_KINDS = ("white", "pink", "babble")


def _power(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.mean(x * x)) if len(x) else 0.0


def white_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(n)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with a 1/f power spectrum (-3 dB/octave), zero mean."""
    if n == 0:
        return np.zeros(0)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    spec /= np.sqrt(f)
    spec[0] = 0.0
    return np.fft.irfft(spec, n)


def babble_noise(n: int, sources, rng: np.random.Generator, n_talkers: int = 6) -> np.ndarray:
    """Sum of ``n_talkers`` waves drawn from ``sources`` (each normalised to unit RMS), each at a
    random offset (wrapping around) and, with probability 1/2, time-reversed."""
    if not sources:
        raise InvalidInputError("babble noise needs at least one source utterance")
    out = np.zeros(n)
    for _ in range(int(n_talkers)):
        src = np.asarray(sources[int(rng.integers(len(sources)))], dtype=np.float64)
        p = _power(src)
        if p == 0 or n == 0:
            continue
        src = src / math.sqrt(p)
        if rng.random() < 0.5:
            src = src[::-1]
        seg = np.zeros(n)
        seg[: min(n, len(src))] = src[:n]
        out += np.roll(seg, int(rng.integers(n)))
    return out


def add_noise(wave, snr_db: float, rng: np.random.Generator, kind: str = "white", *,
              sources=None, speech: slice | None = None, n_talkers: int = 6) -> np.ndarray:
    """``wave`` plus noise scaled to ``snr_db``.

    The speech power is measured over ``wave[speech]`` (default: the whole wave; pass the slice
    where the word is, when it sits in a longer window of silence) and the noise power over the
    whole noise signal. ``kind``: ``white``, ``pink`` or ``babble`` (needs ``sources``).
    """
    w = np.asarray(wave, dtype=np.float64)
    if not math.isfinite(snr_db):
        raise InvalidInputError(f"snr_db must be finite, got {snr_db}")
    if kind == "white":
        noise = white_noise(len(w), rng)
    elif kind == "pink":
        noise = pink_noise(len(w), rng)
    elif kind == "babble":
        noise = babble_noise(len(w), sources, rng, n_talkers)
    else:
        raise InvalidInputError(f"noise kind {kind!r} is not one of {', '.join(NOISE_KINDS)}")
    p_speech = _power(w[speech] if speech is not None else w)
    p_noise = _power(noise)
    if p_speech == 0 or p_noise == 0:
        return w.copy()
    return w + noise * math.sqrt(p_speech / (p_noise * 10 ** (snr_db / 10)))


def synthetic_rir(sr: int, rt60: float, rng: np.random.Generator, drr_db: float = 0.0) -> np.ndarray:
    """A synthetic room impulse response: a unit direct path, then (after 2-6 ms) exponentially
    decaying Gaussian noise (60 dB in ``rt60`` s) whose energy relative to the direct path is
    ``-drr_db`` dB; the tail is progressively low-passed (high frequencies decay faster)."""
    if not rt60 > 0:
        raise InvalidInputError(f"rt60 must be > 0 s, got {rt60}")
    n = int(min(rt60, 2.0) * sr) + 1
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60)  # 10^(-60/20) at rt60
    # high frequencies decay faster: blend the tail with a smoothed copy as it decays
    smooth = signal.lfilter([0.5], [1.0, -0.5], tail)
    mix = np.clip(t / rt60, 0.0, 1.0)
    tail = (1 - mix) * tail + mix * smooth
    gap = int(sr * rng.uniform(0.002, 0.006))
    tail[:gap] = 0.0
    e = _power(tail) * n
    if e > 0:
        tail *= math.sqrt(10 ** (-drr_db / 10) / e)
    tail[0] = 1.0
    return tail


def reverberate(wave, sr: int, rt60: float, rng: np.random.Generator, drr_db: float = 0.0) -> np.ndarray:
    """``wave`` convolved with :func:`synthetic_rir` (the output is longer by the reverb tail)."""
    w = np.asarray(wave, dtype=np.float64)
    return signal.fftconvolve(w, synthetic_rir(sr, rt60, rng, drr_db))


def place(wave, n_total: int, onset: int) -> np.ndarray:
    """``wave`` inside ``n_total`` samples of silence, starting at sample ``onset`` (cut at the end)."""
    out = np.zeros(int(n_total))
    onset = int(max(0, onset))
    if onset < n_total:
        seg = np.asarray(wave, dtype=np.float64)[: n_total - onset]
        out[onset : onset + len(seg)] = seg
    return out


def apply_gain(wave, gain_db: float) -> np.ndarray:
    return np.asarray(wave, dtype=np.float64) * 10 ** (gain_db / 20)


def _range(name, value, lo=-math.inf, hi=math.inf):
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"augment.{name} must be a pair [low, high], got {value!r}") from None
    if not (lo <= a <= b <= hi):
        raise InvalidInputError(f"augment.{name} must satisfy {lo} <= low <= high <= {hi}, got {value!r}")
    return (a, b)


@dataclass
class Augmentation:
    """Ranges of the per-utterance augmentation (every draw uniform in the range).

    * ``onset``: leading silence in seconds, clipped so the word fits the window;
    * ``speed``: factor on the speaker's espeak-ng speed; ``pitch``: offset on its pitch (0..99);
    * ``noise_prob``: probability of background noise; ``snr_db``: its SNR; ``noise_kinds``;
    * ``reverb_prob``, ``rt60`` (s), ``drr_db`` (direct-to-reverberant ratio);
    * ``gain_db``: level around the target RMS.
    """

    onset: tuple = (0.0, 1.0)
    speed: tuple = (0.7, 1.45)
    pitch: tuple = (-10.0, 10.0)
    noise_prob: float = 0.7
    snr_db: tuple = (12.0, 30.0)
    noise_kinds: tuple = NOISE_KINDS
    reverb_prob: float = 0.2
    rt60: tuple = (0.1, 0.3)
    drr_db: tuple = (3.0, 10.0)
    gain_db: tuple = (-6.0, 6.0)
    babble_talkers: tuple = (3, 8)

    def __post_init__(self):
        self.onset = _range("onset", self.onset, 0.0)
        self.speed = _range("speed", self.speed, 0.3, 3.0)
        self.pitch = _range("pitch", self.pitch, -99, 99)
        self.snr_db = _range("snr_db", self.snr_db)
        self.rt60 = _range("rt60", self.rt60, 0.0, 5.0)
        self.drr_db = _range("drr_db", self.drr_db)
        self.gain_db = _range("gain_db", self.gain_db, -60, 60)
        self.babble_talkers = tuple(int(v) for v in _range("babble_talkers", self.babble_talkers, 1, 64))
        for name in ("noise_prob", "reverb_prob"):
            v = float(getattr(self, name))
            if not 0 <= v <= 1:
                raise InvalidInputError(f"augment.{name} must lie in [0, 1], got {v}")
            setattr(self, name, v)
        kinds = tuple(self.noise_kinds)
        bad = [k for k in kinds if k not in NOISE_KINDS]
        if bad or not kinds:
            raise InvalidInputError(f"augment.noise_kinds must be a non-empty subset of {NOISE_KINDS}, got {kinds}")
        self.noise_kinds = kinds

    @classmethod
    def none(cls) -> "Augmentation":
        """No augmentation: onset 0, base speed and pitch, no noise, no reverberation, no gain."""
        return cls(onset=(0, 0), speed=(1, 1), pitch=(0, 0), noise_prob=0.0, reverb_prob=0.0, gain_db=(0, 0))

    @classmethod
    def from_value(cls, value) -> "Augmentation":
        """``True``/``None``/``"default"`` -> defaults; ``False``/``"none"`` -> :meth:`none`;
        a dict -> defaults updated with it; an :class:`Augmentation` as is."""
        if isinstance(value, Augmentation):
            return value
        if value is None or value is True or value == "default":
            return cls()
        if value is False or value == "none":
            return cls.none()
        if isinstance(value, dict):
            known = set(cls.__dataclass_fields__)
            unknown = sorted(set(value) - known)
            if unknown:
                raise InvalidInputError(f"unknown augmentation option(s) {unknown}; known: {sorted(known)}")
            return cls(**value)
        raise InvalidInputError(f"augment must be True/False, 'default', 'none' or a dict of ranges, got {value!r}")

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    def draw(self, rng: np.random.Generator) -> dict:
        """One utterance's settings (a plain dict, also stored for provenance)."""
        u = lambda r: float(rng.uniform(r[0], r[1])) if r[1] > r[0] else float(r[0])  # noqa: E731
        d = {"speed": u(self.speed), "pitch": u(self.pitch), "onset": u(self.onset), "gain_db": u(self.gain_db),
             "noise": None, "snr_db": None, "rt60": None, "drr_db": None}
        if rng.random() < self.noise_prob:
            d["noise"] = self.noise_kinds[int(rng.integers(len(self.noise_kinds)))]
            d["snr_db"] = u(self.snr_db)
            d["talkers"] = int(rng.integers(self.babble_talkers[0], self.babble_talkers[1] + 1))
        if rng.random() < self.reverb_prob:
            d["rt60"] = u(self.rt60)
            d["drr_db"] = u(self.drr_db)
        return d
