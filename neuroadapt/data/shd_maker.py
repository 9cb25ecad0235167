"""``make_shd``: speech (a WAV folder with a labels CSV, or espeak-ng) -> cochlea -> SHD HDF5 file.

Exposed as :func:`neuroadapt.data.spoken_digits.make_shd` (and ``neuroadapt data make-shd``).
Sources: the recordings listed in a CSV (``filename,label[,speaker]``), or ``espeak=True``: a
synthetic, augmented set of the 20 SHD words spoken by espeak-ng speakers
(:mod:`neuroadapt.data.speech`, :mod:`neuroadapt.data.augment`). Every utterance goes through
:mod:`neuroadapt.data.cochlea` (700 channels) and the result is written with
:func:`neuroadapt.data.shd.write_shd`, atomically. The file documents itself: root attribute
``generation`` (JSON: format version, seed, source, speakers, augmentation ranges, cochlea
parameters, duration, sample rate, level) and per-sample datasets ``extra/augment/*`` (onset,
speed, pitch, SNR, noise kind, RT60, DRR, gain of every utterance; NaN / "" where not applied).
"""
from __future__ import annotations

import csv
import json
import os
import tempfile
import time

import numpy as np

from neuroadapt._io import make_public
from neuroadapt.errors import DataError, InvalidInputError

__all__ = ["make_shd", "read_labels_csv", "FORMAT_VERSION"]

FORMAT_VERSION = 1


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="utt", leave=False)


def read_labels_csv(path, wav_dir=None, keys=None) -> list[tuple[str, int, int]]:
    """Rows ``(wav path, label, speaker)`` of a labels CSV: ``filename,label[,speaker]``.

    A header line (``filename,label,...``) is optional. ``label`` is an integer class index or a
    word from ``keys`` (default: the 20 SHD words); ``speaker`` a non-negative integer (default 0).
    Filenames are relative to ``wav_dir`` (default: the CSV's folder). :class:`DataError` names the
    line of any malformed row.
    """
    from neuroadapt.data.speech import KEYS

    path = os.fspath(path)
    keys = list(KEYS if keys is None else keys)
    base = os.fspath(wav_dir) if wav_dir is not None else os.path.dirname(os.path.abspath(path))
    if not os.path.isfile(path):
        raise DataError(f"labels CSV not found: {path} (expected lines 'filename,label[,speaker]')")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            lines = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read the labels CSV ({type(exc).__name__}: {exc})") from None
    rows = []
    for n, line in enumerate(lines, start=1):
        fields = [f.strip() for f in line]
        if not fields or all(not f for f in fields) or fields[0].startswith("#"):
            continue
        if n == 1 and len(fields) >= 2 and fields[0].lower() in ("filename", "file", "path") \
                and fields[1].lower() == "label":
            continue
        if len(fields) not in (2, 3) or not fields[0]:
            raise DataError(f"{path}, line {n}: expected 'filename,label[,speaker]', got {line!r}")
        label_s = fields[1]
        try:
            label = int(label_s)
        except ValueError:
            if label_s in keys:
                label = keys.index(label_s)
            else:
                raise DataError(f"{path}, line {n}: label {label_s!r} is neither an integer nor one of "
                                f"the class names {keys}") from None
        if label < 0:
            raise DataError(f"{path}, line {n}: label must be >= 0, got {label}")
        speaker = 0
        if len(fields) == 3 and fields[2]:
            try:
                speaker = int(fields[2])
            except ValueError:
                raise DataError(f"{path}, line {n}: speaker must be a non-negative integer, got {fields[2]!r}") from None
            if speaker < 0:
                raise DataError(f"{path}, line {n}: speaker must be >= 0, got {speaker}")
        rows.append((os.path.join(base, fields[0]), label, speaker))
    if not rows:
        raise DataError(f"{path}: no samples listed (expected lines 'filename,label[,speaker]')")
    return rows


def _utterance(x, sr: int, n_total: int | None, settings: dict, rng, babble, target_rms: float):
    """Reverb, level, onset placement, noise and gain for one clean word ``x``."""
    from neuroadapt.data import augment as aug
    from neuroadapt.data.speech import normalize_rms

    if settings.get("rt60") is not None:
        x = aug.reverberate(x, sr, settings["rt60"], rng, settings["drr_db"])
    x = normalize_rms(x, target_rms)
    n_word = len(x)
    if n_total is None:
        onset = int(round(settings["onset"] * sr))
        n_total = onset + n_word
    else:
        onset = int(round(min(settings["onset"], max(0.0, (n_total - n_word) / sr)) * sr))
    settings["onset"] = onset / sr
    y = aug.place(x, n_total, onset)
    if settings.get("noise") is not None:
        speech = slice(onset, min(n_total, onset + n_word))
        y = aug.add_noise(y, settings["snr_db"], rng, settings["noise"], sources=babble, speech=speech,
                          n_talkers=settings.get("talkers", 6))
    return aug.apply_gain(y, settings["gain_db"])


_AUG_FIELDS = ("onset", "speed", "pitch", "snr_db", "rt60", "drr_db", "gain_db")


def _write(out, times, units, labels, speakers, keys, meta_info, generation: dict, per_sample: list[dict],
           times_dtype) -> int:
    """write_shd to a temporary file next to ``out``, add the provenance, then rename: atomic."""
    import h5py

    from neuroadapt.data.shd import write_shd

    out = os.fspath(out)
    folder = os.path.dirname(os.path.abspath(out))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(out) + ".", suffix=".tmp")
    os.close(fd)
    try:
        write_shd(tmp, times, units, labels, speakers=speakers, keys=keys, meta_info=meta_info,
                  times_dtype=times_dtype)
        with h5py.File(tmp, "a") as f:
            f.attrs["generation"] = json.dumps(generation, sort_keys=True)
            grp = f.create_group("extra/augment")
            for name in _AUG_FIELDS:
                col = np.array([np.nan if s.get(name) is None else s[name] for s in per_sample], dtype=np.float32)
                grp.create_dataset(name, data=col)
            kinds = np.array([s.get("noise") or "" for s in per_sample], dtype=object)
            grp.create_dataset("noise", data=kinds, dtype=h5py.string_dtype())
        make_public(tmp)
        os.replace(tmp, out)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise DataError(f"cannot write {out} ({type(exc).__name__}: {exc})") from None
        raise
    return os.path.getsize(out)


# ----------------------------------------------------------------------------- make_shd
def make_shd(out, *, wav_dir=None, labels_csv=None, espeak: bool = False, n_speakers: int = 8, seed: int = 0,
             augment=None, progress: bool = True, **options) -> dict:
    """Convert speech to spikes and write an SHD-format HDF5 file ``out`` (atomically).

    Sources (exactly one):

    * ``wav_dir`` and/or ``labels_csv``: the files listed in the CSV (``filename,label[,speaker]``,
      filenames relative to ``wav_dir``; default CSV ``wav_dir/labels.csv``);
    * ``espeak=True``: ``n_speakers`` synthetic speakers (ids ``first_speaker ..``), each saying
      the 20 SHD words ``repeats`` times.

    ``augment``: ``None`` (default: the standard ranges for espeak, none for WAV files), ``True``,
    ``False``, ``"default"``, ``"none"``, a dict of :class:`~neuroadapt.data.augment.Augmentation`
    ranges, or an ``Augmentation``. ``seed`` fixes every random draw (each utterance has its own
    generator derived from ``(seed, speaker, label, repeat)``).

    ``options``: ``first_speaker`` (0), ``repeats`` (10), ``classes`` (all 20), ``roster_seed`` (0),
    ``duration`` (window length in s; default 1.4 for espeak, each file's own length for WAVs),
    ``sample_rate`` (16000), ``target_rms`` (0.05), ``cochlea`` (dict of
    :class:`~neuroadapt.data.cochlea.Cochlea` fields), ``keys`` (class names), ``times_dtype``
    ("float16").

    Returns a summary dict (path, samples, speakers, spikes per sample, seconds taken, bytes).
    Errors: :class:`DataError` for an unreadable WAV or a malformed CSV (nothing is written),
    :class:`ReferenceUnavailableError` when espeak-ng is missing, :class:`InvalidInputError` for
    bad options.
    """
    from neuroadapt.data.augment import Augmentation
    from neuroadapt.data.cochlea import Cochlea, cochleagram, resample
    from neuroadapt.data.speech import KEYS, read_wav, say, speaker_roster

    t_start = time.perf_counter()
    opts = dict(options)
    first_speaker = int(opts.pop("first_speaker", 0))
    repeats = int(opts.pop("repeats", 10))
    classes = [int(c) for c in opts.pop("classes", range(len(KEYS)))]
    roster_seed = int(opts.pop("roster_seed", 0))
    duration = opts.pop("duration", "auto")
    sr = int(opts.pop("sample_rate", 16000))
    target_rms = float(opts.pop("target_rms", 0.05))
    cochlea_opts = opts.pop("cochlea", None) or {}
    keys = opts.pop("keys", None)
    times_dtype = opts.pop("times_dtype", "float16")
    if opts:
        raise InvalidInputError(f"make_shd: unknown option(s) {sorted(opts)}; known: first_speaker, repeats, "
                                f"classes, roster_seed, duration, sample_rate, target_rms, cochlea, keys, times_dtype")
    from_files = wav_dir is not None or labels_csv is not None
    if from_files == bool(espeak):
        raise InvalidInputError("make_shd: give either wav_dir/labels_csv (a folder of recordings) or espeak=True")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InvalidInputError(f"make_shd: seed must be a non-negative integer, got {seed!r}")
    if augment is None:
        augment = "none" if from_files else "default"
    aug = Augmentation.from_value(augment)
    if isinstance(cochlea_opts, Cochlea):
        cochlea = cochlea_opts
    else:
        try:
            cochlea = Cochlea(**dict(cochlea_opts))
        except TypeError as exc:
            raise InvalidInputError(f"make_shd: bad cochlea option ({exc})") from None
    if duration == "auto":
        duration = None if from_files else 1.4
    n_total = None if duration is None else int(round(float(duration) * sr))
    if n_total is not None and n_total <= 0:
        raise InvalidInputError(f"make_shd: duration must be > 0 s, got {duration}")
    if not target_rms > 0:
        raise InvalidInputError(f"make_shd: target_rms must be > 0, got {target_rms}")

    # ---- pass 1: the clean utterances (and their augmentation draws)
    jobs = []  # (label, speaker id, settings, rng, wave)
    speakers_info = []
    if from_files:
        if labels_csv is None:
            labels_csv = os.path.join(os.fspath(wav_dir), "labels.csv")
        rows = read_labels_csv(labels_csv, wav_dir, keys=keys)
        bar = _progress(len(rows), "reading WAV files", progress)
        for i, (path, label, spk) in enumerate(rows):
            wave, _ = read_wav(path, sr=sr)
            rng = np.random.default_rng([seed, 1, i])
            settings = aug.draw(rng)
            if settings["speed"] != 1.0 or settings["pitch"] != 0.0:
                # recordings: speed perturbation by resampling (changes the pitch too; the rate is
                # rounded to 100 Hz to keep the polyphase filter short); no separate pitch shift
                src = max(100, int(round(sr * settings["speed"] / 100.0)) * 100)
                settings["speed"] = src / sr
                wave = resample(wave, src, sr)
                settings["pitch"] = 0.0
            jobs.append((label, spk, settings, rng, wave))
            if bar:
                bar.update(1)
        if bar:
            bar.close()
        if keys is None:
            n_cls = max(j[0] for j in jobs) + 1
            keys = list(KEYS[:n_cls]) if n_cls <= len(KEYS) else [str(k) for k in range(n_cls)]
        source = {"wav_dir": None if wav_dir is None else os.fspath(wav_dir), "labels_csv": os.fspath(labels_csv)}
    else:
        if isinstance(n_speakers, bool) or not isinstance(n_speakers, (int, np.integer)) or n_speakers < 1:
            raise InvalidInputError(f"make_shd: n_speakers must be a positive integer, got {n_speakers!r}")
        if repeats < 1:
            raise InvalidInputError(f"make_shd: repeats must be >= 1, got {repeats}")
        bad = [c for c in classes if not 0 <= c < len(KEYS)]
        if bad or not classes:
            raise InvalidInputError(f"make_shd: classes must be indices 0..{len(KEYS) - 1}, got {classes}")
        roster = speaker_roster(range(first_speaker, first_speaker + int(n_speakers)), roster_seed)
        speakers_info = [s.to_dict() for s in roster]
        keys = list(KEYS) if keys is None else list(keys)
        bar = _progress(len(roster) * len(classes) * repeats, "espeak-ng", progress)
        for spk in roster:
            for label in classes:
                for rep in range(repeats):
                    rng = np.random.default_rng([seed, 2, spk.id, label, rep])
                    settings = aug.draw(rng)
                    wave = say(spk, label, speed_factor=settings["speed"], pitch_offset=settings["pitch"], sr=sr)
                    jobs.append((label, spk.id, settings, rng, wave.astype(np.float32)))
                    if bar:
                        bar.update(1)
        if bar:
            bar.close()
        source = {"espeak": True, "first_speaker": first_speaker, "n_speakers": int(n_speakers),
                  "repeats": repeats, "classes": classes, "roster_seed": roster_seed}

    # ---- pass 2: augmentation and cochlea
    babble = [j[4] for j in jobs]
    times, units, labels, speakers, per_sample = [], [], [], [], []
    bar = _progress(len(jobs), "cochlea", progress)
    for label, spk, settings, rng, wave in jobs:
        y = _utterance(np.asarray(wave, dtype=np.float64), sr, n_total, settings, rng, babble, target_rms)
        t, u = cochleagram(y, sr, cochlea=cochlea, rng=rng)
        times.append(t)
        units.append(u.astype(np.uint16))
        labels.append(label)
        speakers.append(spk)
        per_sample.append(settings)
        if bar:
            bar.update(1)
    if bar:
        bar.close()

    labels = np.asarray(labels, dtype=np.int64)
    speakers = np.asarray(speakers, dtype=np.int64)
    meta_info = None
    if speakers_info:
        n_ids = int(speakers.max()) + 1
        gender = [""] * n_ids
        for s in speakers_info:
            gender[s["id"]] = s["gender"]
        meta_info = {"gender": gender}
    elapsed = time.perf_counter() - t_start
    generation = {
        "generator": "neuroadapt.data.spoken_digits.make_shd",
        "format_version": FORMAT_VERSION,
        "seed": int(seed),
        "source": source,
        "speakers": speakers_info,
        "augment": aug.to_dict(),
        "cochlea": cochlea.to_dict(),
        "duration_s": None if n_total is None else n_total / sr,
        "sample_rate": sr,
        "target_rms": target_rms,
        "times_dtype": str(np.dtype(times_dtype)),
        "keys": list(keys),
    }
    try:
        from importlib.metadata import version

        generation["neuroadapt_version"] = version("neuroadapt")
    except Exception:  # pragma: no cover - not installed
        pass
    size = _write(out, times, units, labels, speakers, keys, meta_info, generation, per_sample, times_dtype)
    n_spikes = np.array([len(t) for t in times])
    return {
        "path": os.fspath(out),
        "n_samples": int(len(labels)),
        "n_classes": int(len(keys)),
        "n_speakers": int(len(np.unique(speakers))),
        "speakers": sorted(int(s) for s in np.unique(speakers)),
        "spikes_total": int(n_spikes.sum()),
        "spikes_per_sample": float(n_spikes.mean()) if len(n_spikes) else 0.0,
        "seconds": round(time.perf_counter() - t_start, 2),
        "generation_seconds": round(elapsed, 2),
        "bytes": int(size),
        "seed": int(seed),
    }
