"""Speech waveforms: WAV reading, level normalisation, espeak-ng synthesis, synthetic speakers.

The 20 classes follow SHD (Cramer et al. 2022): labels 0-9 are the English digits "zero" ..
"nine", labels 10-19 the German digits "null" .. "neun" (:data:`KEYS`, the names written to an
SHD file's ``extra/keys``; the same order as the English-then-German ``E0..E9, G0..G9`` mapping
of the torchneuromorphic SHD loader).

Synthesis calls the ``espeak-ng`` program (``apt-get install espeak-ng``) with ``-w`` into a
temporary WAV file. A *speaker* (:class:`Speaker`) is a fixed combination of an espeak-ng voice
variant (``m3``, ``f2``, ``klatt4``, ...; see ``espeak-ng --voices=variant``), an English accent
(``en``, ``en-us``, ``en-gb-scotland``, ...; German is always ``de``), a base pitch, a base speed
and a formant-scale factor (the synthesised waveform is resampled by this factor, which scales
every formant like a longer or shorter vocal tract); each speaker says both languages, as in
SHD. :func:`speaker_roster` gives speaker ``i`` the same voice whatever else is generated, so
two calls with disjoint speaker ids are speaker-disjoint.
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass

import numpy as np

from neuroadapt.data.cochlea import resample
from neuroadapt.errors import DataError, InvalidInputError, ReferenceUnavailableError

__all__ = [
    "DIGITS_EN",
    "DIGITS_DE",
    "KEYS",
    "VARIANTS",
    "EN_ACCENTS",
    "Speaker",
    "speaker_roster",
    "espeak_path",
    "check_voice",
    "synthesize",
    "say",
    "read_wav",
    "normalize_rms",
    "trim_silence",
    "rms",
]

DIGITS_EN = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DIGITS_DE = ("null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun")
#: class index -> word: 0-9 English, 10-19 German (the SHD convention)
KEYS = DIGITS_EN + DIGITS_DE

#: espeak-ng voice variants used for synthetic speakers (``espeak-ng --voices=variant``), in
#: roster order; novelty voices (robots, whisper, "Demonic", ...) are left out.
VARIANTS = (
    "m1", "f1", "m2", "f2", "m3", "f3", "m4", "f4", "m5", "f5", "m6", "m7", "m8",
    "klatt", "klatt2", "klatt3", "klatt4", "klatt5", "klatt6",
    "Alex", "Alicia", "Andrea", "Andy", "Annie", "aunty", "belinda", "benjamin", "boris",
    "caleb", "david", "ed", "edward", "Gene", "grandma", "grandpa", "gustave", "iven", "iven2",
    "iven3", "john", "linda", "Lee", "marcelo", "Michael", "miguel", "Mike", "norbert", "pablo",
    "paul", "quincy", "rob", "robert", "sandro", "shelby", "steph", "steph2", "travis", "victor",
    "anika", "zac", "adam", "max",
)
#: English accents (espeak-ng language voices) a speaker may have
EN_ACCENTS = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
              "en-029", "en-us-nyc")
_FEMALE = {"f1", "f2", "f3", "f4", "f5", "Alicia", "Andrea", "Annie", "aunty", "belinda", "grandma",
           "linda", "steph", "steph2", "anika"}

_INSTALL_HINT = "install it with `apt-get install espeak-ng` (Debian/Ubuntu) or `brew install espeak-ng`"


@dataclass(frozen=True)
class Speaker:
    """A synthetic speaker: espeak-ng voice settings that stay fixed across its utterances."""

    id: int
    variant: str           # espeak-ng voice variant, e.g. "m3"
    en_voice: str          # English accent voice, e.g. "en-us"
    de_voice: str = "de"
    pitch: int = 50        # espeak-ng -p, 0..99
    speed: int = 175       # espeak-ng -s, words per minute
    formant: float = 1.0   # resampling factor: > 1 raises every formant (shorter vocal tract)
    gender: str = "male"

    def voice(self, label: int) -> str:
        lang = self.en_voice if label < len(DIGITS_EN) else self.de_voice
        return f"{lang}+{self.variant}"

    def to_dict(self) -> dict:
        return asdict(self)


def speaker_roster(ids, roster_seed: int = 0) -> list[Speaker]:
    """Speakers with the given ids. Speaker ``i`` depends only on ``(i, roster_seed)``: its variant
    is ``VARIANTS[perm[i mod n]]`` (``perm`` a permutation fixed by ``roster_seed``, so ids below
    ``len(VARIANTS)`` = 62 never share a variant) and its pitch, speed, accent and formant scale are
    drawn from a generator seeded with ``(roster_seed, i)``."""
    perm = np.random.default_rng([int(roster_seed), 7919]).permutation(len(VARIANTS))
    out = []
    for i in ids:
        i = int(i)
        if i < 0:
            raise InvalidInputError(f"speaker ids must be >= 0, got {i}")
        rng = np.random.default_rng([int(roster_seed), 104729, i])
        variant = VARIANTS[perm[i % len(VARIANTS)]]
        female = variant in _FEMALE
        out.append(Speaker(
            id=i,
            variant=variant,
            en_voice=EN_ACCENTS[int(rng.integers(len(EN_ACCENTS)))],
            pitch=int(rng.integers(45, 85) if female else rng.integers(15, 60)),
            speed=int(rng.integers(135, 215)),
            formant=float(np.round(rng.uniform(1.0, 1.12) if female else rng.uniform(0.88, 1.04), 3)),
            gender="female" if female else "male",
        ))
    return out


# ----------------------------------------------------------------------------- espeak-ng
def espeak_path() -> str:
    """Path of the ``espeak-ng`` executable; :class:`ReferenceUnavailableError` if it is missing."""
    path = shutil.which("espeak-ng") or shutil.which("espeak")
    if path is None:
        raise ReferenceUnavailableError(f"espeak-ng was not found on PATH; speech synthesis needs it: {_INSTALL_HINT}")
    return path


@functools.lru_cache(maxsize=4)
def _known_voices(exe: str) -> tuple[frozenset, frozenset]:
    """(voices, variants) espeak-ng knows, lower-cased: language codes, voice names and file names
    from ``espeak-ng --voices`` and ``--voices=variant``."""
    def table(arg):
        try:
            res = subprocess.run([exe, arg], capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as exc:
            raise ReferenceUnavailableError(f"cannot run {exe} ({exc}); {_INSTALL_HINT}") from None
        names = set()
        for line in res.stdout.decode("utf-8", "replace").splitlines()[1:]:
            cols = line.split()
            if len(cols) >= 5:
                # Pty Language Age/Gender VoiceName File [Other languages]
                names.update({cols[1].lower(), cols[3].lower(), cols[4].lower(), cols[4].split("/")[-1].lower()})
        return frozenset(names)

    return table("--voices"), table("--voices=variant")


def check_voice(voice: str) -> None:
    """:class:`DataError` unless espeak-ng knows ``voice`` (``lang`` or ``lang+variant``).

    espeak-ng itself falls back silently to the plain language voice for an unknown variant, so
    a typo would otherwise go unnoticed."""
    voices, variants = _known_voices(espeak_path())
    lang, _, variant = voice.partition("+")
    if lang.lower() not in voices:
        raise DataError(f"espeak-ng has no voice {lang!r}; list them with `espeak-ng --voices`")
    if variant and variant.lower() not in variants and f"!v/{variant.lower()}" not in variants:
        raise DataError(f"espeak-ng has no voice variant {variant!r}; list them with `espeak-ng --voices=variant`")


def synthesize(word: str, voice: str = "en", speed: float = 175, pitch: float = 50, *,
               amplitude: int = 100, trim: bool = True) -> tuple[np.ndarray, int]:
    """Speak ``word`` with espeak-ng: ``(wave float64 in [-1, 1], sample rate)`` (22050 Hz).

    ``voice``: an espeak-ng voice, optionally with a variant (``"de+m2"``, ``"en-us+f3"``);
    ``speed`` in words per minute (80..450); ``pitch`` 0..99. ``trim`` cuts leading and trailing
    silence (see :func:`trim_silence`). Raises :class:`ReferenceUnavailableError` if espeak-ng is
    not installed, :class:`DataError` if it fails (e.g. an unknown voice).
    """
    if not isinstance(word, str) or not word.strip():
        raise InvalidInputError(f"synthesize: word must be a non-empty string, got {word!r}")
    if not isinstance(voice, str) or not voice or any(c.isspace() for c in voice):
        raise InvalidInputError(f"synthesize: voice must be a voice name like 'en+m3', got {voice!r}")
    speed = int(round(float(speed)))
    pitch = int(round(float(pitch)))
    if not 80 <= speed <= 450:
        raise InvalidInputError(f"synthesize: speed must lie in 80..450 words per minute, got {speed}")
    if not 0 <= pitch <= 99:
        raise InvalidInputError(f"synthesize: pitch must lie in 0..99, got {pitch}")
    exe = espeak_path()
    check_voice(voice)  # espeak-ng silently falls back to another voice for unknown names
    fd, tmp = tempfile.mkstemp(prefix="neuroadapt-espeak-", suffix=".wav")
    os.close(fd)
    try:
        cmd = [exe, "-v", voice, "-s", str(speed), "-p", str(pitch), "-a", str(int(amplitude)),
               "-z", "-b", "1", "-w", tmp, word]
        try:
            res = subprocess.run(cmd, capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as exc:
            raise ReferenceUnavailableError(f"cannot run {exe} ({exc}); {_INSTALL_HINT}") from None
        err = res.stderr.decode("utf-8", "replace").strip()
        if res.returncode != 0 or os.path.getsize(tmp) <= 44:
            raise DataError(f"espeak-ng failed for voice {voice!r}, word {word!r} (exit {res.returncode}): "
                            f"{err or 'no audio written'}; list voices with `espeak-ng --voices`")
        wave, sr = read_wav(tmp)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    if trim:
        wave = trim_silence(wave, sr)
    return wave, sr


def say(speaker: Speaker, label: int, *, speed_factor: float = 1.0, pitch_offset: float = 0.0,
        sr: int = 16000) -> np.ndarray:
    """Speaker ``speaker`` saying class ``label`` (0-19), at ``sr`` Hz.

    ``speed_factor`` scales the speaker's base speed and ``pitch_offset`` shifts its base pitch
    (per-utterance perturbation); the speaker's formant factor is applied by resampling.
    """
    if not 0 <= int(label) < len(KEYS):
        raise InvalidInputError(f"label must lie in 0..{len(KEYS) - 1}, got {label}")
    speed = float(np.clip(speaker.speed * speed_factor, 80, 450))
    pitch = float(np.clip(speaker.pitch + pitch_offset, 0, 99))
    wave, rate = synthesize(KEYS[int(label)], speaker.voice(int(label)), speed, pitch)
    # formant scaling: pretend the wave was sampled at rate / formant, then resample to sr:
    # every frequency is multiplied by `formant` (and the duration divided by it). The rate is
    # rounded to 100 Hz (< 0.25 % change) to keep the polyphase filter short (fast).
    src = int(round(rate / speaker.formant / 100.0)) * 100
    return resample(wave, src, sr)


# ----------------------------------------------------------------------------- WAV files
def read_wav(path, sr: int | None = None) -> tuple[np.ndarray, int]:
    """Read an audio file (WAV, FLAC, OGG: whatever ``soundfile`` reads) as mono float64.

    Multi-channel audio is averaged to mono. With ``sr`` the wave is resampled to it. Raises
    :class:`DataError` naming the file if it is missing or not readable audio.
    """
    import soundfile as sf

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"audio file not found: {path}")
    try:
        wave, rate = sf.read(path, dtype="float64", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        raise DataError(f"{path}: not a readable audio file ({type(exc).__name__}: {exc})") from None
    wave = wave.mean(axis=1)
    if not np.isfinite(wave).all():
        raise DataError(f"{path}: contains NaN/inf samples")
    if sr is not None and int(sr) != rate:
        wave = resample(wave, rate, int(sr))
        rate = int(sr)
    return wave, int(rate)


def rms(wave) -> float:
    w = np.asarray(wave, dtype=np.float64)
    return float(np.sqrt(np.mean(w * w))) if len(w) else 0.0


def normalize_rms(wave, target: float = 0.05) -> np.ndarray:
    """Scale ``wave`` to RMS ``target`` (a silent wave is returned unchanged)."""
    w = np.asarray(wave, dtype=np.float64)
    r = rms(w)
    return w * (target / r) if r > 0 else w.copy()


def trim_silence(wave, sr: int, threshold_db: float = -45.0, margin: float = 0.01) -> np.ndarray:
    """Cut leading and trailing samples quieter than ``threshold_db`` below the peak, keeping
    ``margin`` seconds on each side."""
    w = np.asarray(wave, dtype=np.float64)
    if len(w) == 0:
        return w
    peak = np.max(np.abs(w))
    if peak == 0:
        return w[:0]
    loud = np.flatnonzero(np.abs(w) >= peak * 10 ** (threshold_db / 20))
    pad = int(margin * sr)
    return w[max(0, loud[0] - pad): loud[-1] + pad + 1]
