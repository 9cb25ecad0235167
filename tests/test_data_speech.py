"""Cochlea model, espeak-ng synthesis, WAV reading and augmentation (neuroadapt.data.cochlea /
speech / augment)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from neuroadapt.data import augment as aug
from neuroadapt.data.cochlea import Cochlea, cochleagram, erb_space, hair_cell_drive, hz_to_erb_rate
from neuroadapt.data.events import check_events
from neuroadapt.errors import DataError, InvalidInputError, ShapeError

SR = 16000


def tone(freq, dur=0.5, amp=0.05, sr=SR):
    t = np.arange(int(dur * sr)) / sr
    return amp * np.sin(2 * np.pi * freq * t)


# ----------------------------------------------------------------------------- cochlea
def test_erb_space_is_ascending_and_spans_the_range():
    cf = erb_space(50.0, 8000.0, 700)
    assert cf.shape == (700,)
    assert np.all(np.diff(cf) > 0)
    assert cf[0] == pytest.approx(50.0) and cf[-1] == pytest.approx(8000.0)
    # equally spaced on the ERB-rate scale
    assert np.allclose(np.diff(hz_to_erb_rate(cf)), np.diff(hz_to_erb_rate(cf)).mean())


@pytest.mark.parametrize("freq", [250.0, 1000.0, 4000.0])
def test_pure_tone_excites_channels_near_its_frequency(freq):
    times, units = cochleagram(tone(freq), SR, rng=0)
    cf = Cochlea().centre_frequencies
    counts = np.bincount(units, minlength=700)
    assert counts.sum() > 20
    best = cf[np.argmax(counts)]
    # within one ERB-rate unit (about 22 of the 700 channels)
    assert abs(hz_to_erb_rate(best) - hz_to_erb_rate(freq)) < 1.0, (freq, best)
    # and the drive before spiking peaks there too (deterministic, no membrane noise)
    drive = hair_cell_drive(tone(freq), SR).sum(axis=0)
    assert abs(hz_to_erb_rate(cf[np.argmax(drive)]) - hz_to_erb_rate(freq)) < 0.5


def test_silence_gives_almost_no_spikes():
    times, units = cochleagram(np.zeros(SR), SR, rng=0)
    assert len(times) <= 3
    times, units = cochleagram(np.zeros(SR), SR, rng=0, noise=0.0)
    assert len(times) == 0


def test_output_is_valid_shd_events():
    rng = np.random.default_rng(0)
    wave = np.concatenate([np.zeros(2000), 0.05 * rng.standard_normal(6000), tone(600, 0.3)])
    times, units = cochleagram(wave, SR, rng=1)
    assert times.dtype == np.float64 and units.dtype == np.int64
    assert len(times) == len(units) > 100
    assert np.all(np.diff(times) >= 0) and times.min() >= 0
    assert times.max() <= len(wave) / SR + 1e-9
    assert units.min() >= 0 and units.max() < 700
    check_events(times.astype(np.float16), units.astype(np.uint16), 700)  # as write_shd stores them
    # nothing before the noise starts (plus filter delay), spikes during it
    assert (times < 2000 / SR).sum() <= 2


def test_seed_fixes_the_spikes_and_level_matters():
    wave = tone(1000)
    a = cochleagram(wave, SR, rng=3)
    b = cochleagram(wave, SR, rng=3)
    c = cochleagram(wave, SR, rng=4)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not (len(a[0]) == len(c[0]) and np.array_equal(a[0], c[0]))
    quiet = cochleagram(wave * 10 ** (-60 / 20), SR, rng=3)
    assert len(quiet[0]) < len(a[0]) / 4


def test_channel_count_and_resampling():
    t, u = cochleagram(tone(500, sr=22050), 22050, n_channels=64, rng=0)
    assert u.max() < 64
    t2, u2 = cochleagram(tone(500, sr=8000), 8000, n_channels=64, rng=0)
    assert len(t2) > 0


def test_cochlea_is_fast():
    import time

    wave = 0.05 * np.random.default_rng(0).standard_normal(SR)
    cochleagram(wave, SR, rng=0)  # warm the filter cache
    t0 = time.perf_counter()
    cochleagram(wave, SR, rng=0)
    assert time.perf_counter() - t0 < 2.0  # ~0.1-0.2 s on one core; loose for busy CI machines


def test_cochlea_rejects_bad_input():
    with pytest.raises(InvalidInputError):
        cochleagram(np.array([0.0, np.nan, 0.0]), SR)
    with pytest.raises(ShapeError):
        cochleagram(np.zeros((2, 100)), SR)
    with pytest.raises(InvalidInputError):
        cochleagram(np.zeros(100), -1)
    with pytest.raises(InvalidInputError):
        Cochlea(f_min=100.0, f_max=50.0)
    with pytest.raises(InvalidInputError):
        Cochlea(gain=0.0)
    t, u = cochleagram(np.zeros(0), SR)
    assert len(t) == len(u) == 0


# ----------------------------------------------------------------------------- augmentation
def test_augmentation_is_deterministic_for_a_seed():
    a = aug.Augmentation()
    assert a.draw(np.random.default_rng(5)) == a.draw(np.random.default_rng(5))
    wave = tone(440)
    out1 = aug.add_noise(wave, 10.0, np.random.default_rng(1), "pink")
    out2 = aug.add_noise(wave, 10.0, np.random.default_rng(1), "pink")
    out3 = aug.add_noise(wave, 10.0, np.random.default_rng(2), "pink")
    assert np.array_equal(out1, out2) and not np.array_equal(out1, out3)
    r1 = aug.reverberate(wave, SR, 0.3, np.random.default_rng(1))
    assert np.array_equal(r1, aug.reverberate(wave, SR, 0.3, np.random.default_rng(1)))


@pytest.mark.parametrize("kind", ["white", "pink", "babble"])
@pytest.mark.parametrize("snr", [-5.0, 0.0, 12.5])
def test_noise_snr_is_what_was_asked(kind, snr):
    rng = np.random.default_rng(0)
    word = tone(300, 0.4) * np.hanning(int(0.4 * SR))
    wave = aug.place(word, SR, 3000)
    speech = slice(3000, 3000 + len(word))
    sources = [tone(f, 0.3) for f in (200, 350, 900)]
    noisy = aug.add_noise(wave, snr, rng, kind, sources=sources, speech=speech)
    noise = noisy - wave
    measured = 10 * np.log10(np.mean(wave[speech] ** 2) / np.mean(noise**2))
    assert abs(measured - snr) < 0.5
    assert noise.std() > 0


def test_pink_noise_spectrum_falls_3db_per_octave():
    x = aug.pink_noise(2**16, np.random.default_rng(0))
    p = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x))
    lo = p[(f > 0.01) & (f < 0.02)].mean()
    hi = p[(f > 0.04) & (f < 0.08)].mean()
    assert 10 * np.log10(lo / hi) == pytest.approx(10 * np.log10(4.5), abs=1.0)


def test_reverberation_decays_at_rt60():
    rir = aug.synthetic_rir(SR, 0.4, np.random.default_rng(0), drr_db=0.0)
    assert rir[0] == 1.0
    assert len(rir) == int(0.4 * SR) + 1
    tail = rir[1:]
    assert np.sum(tail**2) == pytest.approx(1.0, rel=1e-6)  # DRR 0 dB: tail energy = direct energy
    early = np.mean(tail[int(0.01 * SR): int(0.05 * SR)] ** 2)
    late = np.mean(tail[int(0.35 * SR): int(0.39 * SR)] ** 2)
    # 60 dB per 0.4 s -> about 50 dB between 0.03 s and 0.37 s (plus extra high-frequency loss)
    assert 40 < 10 * np.log10(early / late) < 70


def test_place_and_gain():
    w = np.ones(100)
    out = aug.place(w, 150, 80)
    assert out.shape == (150,) and out[:80].sum() == 0 and out[80:].sum() == 70
    assert np.allclose(aug.apply_gain(w, 20.0), 10.0)


def test_augmentation_options_are_checked():
    with pytest.raises(InvalidInputError):
        aug.Augmentation(snr_db=(10, 0))
    with pytest.raises(InvalidInputError):
        aug.Augmentation(noise_kinds=("purple",))
    with pytest.raises(InvalidInputError):
        aug.Augmentation.from_value({"snr": (0, 1)})
    assert aug.Augmentation.from_value(False).noise_prob == 0
    assert aug.Augmentation.from_value({"noise_prob": 0.5}).noise_prob == 0.5
    with pytest.raises(InvalidInputError):
        aug.add_noise(np.ones(10), 0.0, np.random.default_rng(0), "purple")


# ----------------------------------------------------------------------------- speech
def _require_espeak():
    if shutil.which("espeak-ng") is None and shutil.which("espeak") is None:
        pytest.fail("espeak-ng is not installed; it is required for these tests: apt-get install espeak-ng")


def test_synthesize_one_word():
    from neuroadapt.data.speech import synthesize

    _require_espeak()
    wave, sr = synthesize("seven", "en+m3", speed=160, pitch=40)
    assert sr > 8000 and wave.ndim == 1 and wave.dtype == np.float64
    assert 0.2 < len(wave) / sr < 1.5
    assert 0.01 < np.abs(wave).max() <= 1.0
    de, _ = synthesize("fünf", "de+f2")
    assert len(de) > 0.2 * sr
    # the same settings give the same audio
    assert np.array_equal(wave, synthesize("seven", "en+m3", speed=160, pitch=40)[0])
    with pytest.raises(DataError):
        synthesize("seven", "no-such-voice-xyz")
    with pytest.raises(DataError, match="variant"):  # espeak-ng itself would silently use plain "en"
        synthesize("seven", "en+no-such-variant")
    with pytest.raises(InvalidInputError):
        synthesize("seven", "en", speed=10)


def test_speakers_say_both_languages_and_are_distinct():
    from neuroadapt.data.speech import KEYS, VARIANTS, say, speaker_roster

    _require_espeak()
    assert KEYS[0] == "zero" and KEYS[9] == "nine" and KEYS[10] == "null" and KEYS[19] == "neun"
    roster = speaker_roster(range(28))
    assert len({s.variant for s in roster}) == 28  # no shared voice variant up to len(VARIANTS)
    assert speaker_roster([5]) == [roster[5]]  # speaker i does not depend on the others
    assert len(VARIANTS) >= 40
    s = roster[0]
    assert s.voice(3).startswith(s.en_voice) and s.voice(13).startswith("de")
    w = say(s, 13, sr=SR)
    assert w.ndim == 1 and len(w) > 0.15 * SR


def test_read_wav(tmp_path):
    import soundfile as sf

    from neuroadapt.data.speech import read_wav

    stereo = np.stack([tone(300, sr=22050), 0.5 * tone(300, sr=22050)], axis=1)
    sf.write(tmp_path / "s.wav", stereo, 22050)
    w, sr = read_wav(tmp_path / "s.wav")
    assert sr == 22050 and w.ndim == 1 and np.allclose(w, 0.75 * tone(300, sr=22050), atol=1e-4)
    w16, sr16 = read_wav(tmp_path / "s.wav", sr=SR)
    assert sr16 == SR and abs(len(w16) - 0.5 * SR) <= 1
    (tmp_path / "bad.wav").write_bytes(b"RIFF not really a wave file")
    with pytest.raises(DataError, match="bad.wav"):
        read_wav(tmp_path / "bad.wav")
    with pytest.raises(DataError, match="not found"):
        read_wav(tmp_path / "missing.wav")
