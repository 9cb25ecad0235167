"""`neuroadapt data {info,convert,make-shd}`: summaries, conversions, one-line errors (exit 2)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from neuroadapt.cli import main
from neuroadapt.data.aer import read_aer
from neuroadapt.data.events import bin_batch
from neuroadapt.data.shd import read_shd, write_shd

KEYS = [f"word-{k}" for k in range(20)]


@pytest.fixture
def shd_file(tmp_path):
    rng = np.random.default_rng(7)
    n = [12, 0, 30, 5, 18, 7]  # sample 1 is silent
    times = [np.sort(rng.uniform(0.002, 1.3, k)) for k in n]  # >= 2 ms: float16 is exact through 1 µs ticks
    units = [rng.integers(0, 700, k) for k in n]
    labels = [0, 3, 19, 3, 7, 0]
    speakers = [0, 1, 1, 4, 2, 0]
    meta = {"gender": ["f", "m", "f", "m", "f"], "age": [20, 31, 42, 53, 64]}
    path = write_shd(tmp_path / "small.h5", times, units, labels, speakers, KEYS, meta)
    return path, times, units, labels, speakers


def _run(capsys, argv):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _one_line_error(rc, err, *fragments):
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_info_text(capsys, shd_file):
    path, times, units, *_ = shd_file
    rc, out, err = _run(capsys, ["data", "info", path])
    assert rc == 0, err
    assert "samples:      6" in out
    assert "classes:      20:" in out and "'word-19' (1)" in out and "'word-3' (2)" in out
    assert "speakers:     4: 0, 1, 2, 4" in out
    assert "spikes:       72 total; per sample mean 12.0, min 0, max 30" in out
    assert "spikes/times float16" in out and "spikes/units uint16" in out
    assert "meta_info:    age, gender" in out


def test_info_json(capsys, shd_file):
    path, times, units, labels, speakers = shd_file
    rc, out, err = _run(capsys, ["data", "info", path, "--json"])
    assert rc == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert {"path", "format", "samples", "n_classes", "classes", "class_counts", "n_speakers", "speakers", "spikes",
            "duration_s", "n_channels", "channels_used", "channel_range", "dtypes"} <= set(summary)
    assert summary["format"] == "shd" and summary["samples"] == 6
    assert summary["classes"] == KEYS and summary["class_counts"][3] == 2 and sum(summary["class_counts"]) == 6
    assert summary["speakers"] == [0, 1, 2, 4] and summary["n_speakers"] == 4
    counts = [len(t) for t in times]
    assert summary["spikes"] == {"total": sum(counts), "per_sample_mean": float(np.mean(counts)),
                                 "per_sample_min": 0.0, "per_sample_max": 30.0}
    last = [float(t.astype(np.float16)[-1]) if len(t) else 0.0 for t in times]
    assert summary["duration_s"]["max"] == pytest.approx(max(last))
    assert summary["duration_s"]["mean"] == pytest.approx(np.mean(last))
    used = np.unique(np.concatenate(units))
    assert summary["channels_used"] == len(used) and summary["channel_range"] == [int(used[0]), int(used[-1])]
    assert summary["n_channels"] == 700
    assert summary["dtypes"] == {"spikes/times": "float16", "spikes/units": "uint16", "labels": "uint16",
                                 "extra/speaker": "uint16"}


@pytest.mark.parametrize("layout", ["spinnaker", "loihi"])
def test_convert_shd_aer_shd_equal(capsys, tmp_path, shd_file, layout):
    path = shd_file[0]
    rc, out, err = _run(capsys, ["data", "convert", path, tmp_path / "x.aer", "--address-layout", layout])
    assert rc == 0, err
    assert "wrote" in out and "6 samples, 72 spikes" in out
    d = read_aer(tmp_path / "x.aer")
    assert d.layout.name == layout and d.tick_ns == 1000 and d.n_samples == 6
    rc, out, err = _run(capsys, ["data", "info", tmp_path / "x.aer", "--json"])
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["format"] == "aer" and summary["aer"]["address_layout"] == layout
    assert summary["aer"]["records"] == 72 and summary["classes"] == KEYS
    rc, out, err = _run(capsys, ["data", "convert", tmp_path / "x.aer", tmp_path / "back.h5"])
    assert rc == 0, err
    a, b = read_shd(path), read_shd(tmp_path / "back.h5")
    assert b.times_dtype == a.times_dtype == np.float16
    for ta, ua, tb, ub in zip(a.times, a.units, b.times, b.units):
        np.testing.assert_array_equal(tb, ta)
        np.testing.assert_array_equal(ub, ua)
    np.testing.assert_array_equal(b.labels, a.labels)
    np.testing.assert_array_equal(b.speakers, a.speakers)
    assert b.keys == a.keys
    assert list(b.meta_info["gender"]) == list(a.meta_info["gender"])
    np.testing.assert_array_equal(b.meta_info["age"], a.meta_info["age"])


def test_convert_dense_and_tonic(capsys, tmp_path, shd_file):
    path = shd_file[0]
    rc, out, err = _run(capsys, ["data", "convert", path, tmp_path / "d.bin", "--to", "dense-npz",
                                 "--dt", "0.014", "--duration", "1.4"])
    assert rc == 0, err
    assert "n_bins=100" in out and "dropped_spikes=0" in out
    a = read_shd(path)
    with np.load(tmp_path / "d.bin") as z:
        assert z["spikes"].shape == (100, 6, 700) and z["spikes"].dtype == np.uint8
        np.testing.assert_array_equal(z["spikes"], bin_batch(a.times, a.units, 700, 0.014, 1.4))
    rc, out, err = _run(capsys, ["data", "convert", path, tmp_path / "short.npz", "--dt", "0.01", "--duration", "0.5"])
    assert rc == 0, err
    kept = sum(int((t.astype(np.float64) < 0.5).sum()) for t in a.times)
    assert f"dropped_spikes={72 - kept}" in out and 0 < kept < 72
    rc, out, err = _run(capsys, ["data", "convert", path, tmp_path / "s.npy", "--sample", "2"])
    assert rc == 0, err
    ev = np.load(tmp_path / "s.npy", allow_pickle=False)
    assert ev.dtype.names == ("t", "x", "p") and len(ev) == 30
    rc, out, err = _run(capsys, ["data", "info", tmp_path / "s.npy", "--json"])
    assert json.loads(out.strip().splitlines()[-1])["format"] == "tonic-npy"


def _bad_aer(tmp_path):
    p = tmp_path / "bad.aer"
    p.write_bytes(b"NOTAER" + b"\0" * 100)
    return p


def _garbage(tmp_path):
    p = tmp_path / "notes.dat"
    p.write_text("hello")
    return p


def _foreign_h5(tmp_path):
    import h5py

    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.arange(3)
    return tmp_path / "other.h5"


def _truncated_aer(tmp_path, shd_path):
    main(["data", "convert", str(shd_path), str(tmp_path / "t.aer")])
    data = (tmp_path / "t.aer").read_bytes()
    (tmp_path / "t.aer").write_bytes(data[:-30])
    return tmp_path / "t.aer"


BAD = {
    "missing input": (lambda tp, shd: ["data", "convert", tp / "nope.h5", tp / "out.aer"], ("not found",)),
    "garbage aer": (lambda tp, shd: ["data", "convert", _bad_aer(tp), tp / "out.h5"], ("bad magic",)),
    "garbage file": (lambda tp, shd: ["data", "info", _garbage(tp)], ("cannot tell its format",)),
    "h5 not shd": (lambda tp, shd: ["data", "info", _foreign_h5(tp)], ("not an SHD-format file",)),
    "truncated aer": (lambda tp, shd: ["data", "convert", _truncated_aer(tp, shd), tp / "out.h5"], ("truncated",)),
    "info truncated": (lambda tp, shd: ["data", "info", _truncated_aer(tp, shd)], ("truncated",)),
    "info missing": (lambda tp, shd: ["data", "info", tp / "nope.aer"], ("not found",)),
    "unknown --to": (lambda tp, shd: ["data", "convert", shd, tp / "out.aer", "--to", "aedat"], ("--to 'aedat'",)),
    "unknown extension": (lambda tp, shd: ["data", "convert", shd, tp / "out.txt"], ("cannot infer",)),
    "unknown layout": (lambda tp, shd: ["data", "convert", shd, tp / "out.aer", "--address-layout", "truenorth"],
                       ("--address-layout",)),
    "option for another format": (lambda tp, shd: ["data", "convert", shd, tp / "out.aer", "--dt", "0.01"],
                                  ("--dt", "dense-npz")),
    "layout too small": (lambda tp, shd: ["data", "convert", shd, tp / "out.aer", "--address-layout", "loihi",
                                          "--neurons-per-core", "99999"], ("neurons_per_core",)),
    "sample out of range": (lambda tp, shd: ["data", "convert", shd, tp / "out.npy", "--sample", "6"],
                            ("out of range",)),
    "several samples to npy": (lambda tp, shd: ["data", "convert", shd, tp / "out.npy"], ("--sample",)),
    "dt not dividing duration": (lambda tp, shd: ["data", "convert", shd, tp / "out.npz", "--dt", "0.03",
                                                  "--duration", "1.0"], ("whole number",)),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_inputs_one_line_error(capsys, tmp_path, shd_file, name):
    argv, fragments = BAD[name]
    argv = argv(tmp_path, shd_file[0])
    capsys.readouterr()
    before = set(os.listdir(tmp_path))
    rc, out, err = _run(capsys, argv)
    _one_line_error(rc, err, *fragments)
    assert set(os.listdir(tmp_path)) == before  # nothing written, no temporary files left


MAKE_SHD_BAD = {
    "no source": (["--out", "x.h5"], "needs a source"),
    "both sources": (["--out", "x.h5", "--espeak", "--wav-dir", "."], "not both"),
    "labels and espeak": (["--out", "x.h5", "--espeak", "--labels", "l.csv"], "not both"),
    "no out": (["--espeak"], "--out"),
    "wav dir missing": (["--out", "x.h5", "--wav-dir", "nope"], "not a folder"),
    "labels missing": (["--out", "x.h5", "--wav-dir", ".", "--labels", "nope.csv"], "not a file"),
    "speakers with files": (["--out", "x.h5", "--wav-dir", ".", "--speakers", "3"], "--speakers goes with --espeak"),
    "zero speakers": (["--out", "x.h5", "--espeak", "--speakers", "0"], "--speakers"),
    "negative seed": (["--out", "x.h5", "--espeak", "--seed", "-1"], "--seed"),
}


@pytest.mark.parametrize("name", sorted(MAKE_SHD_BAD))
def test_make_shd_argument_validation(capsys, tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    args, fragment = MAKE_SHD_BAD[name]
    rc, out, err = _run(capsys, ["data", "make-shd", *args])
    _one_line_error(rc, err, fragment)
    assert os.listdir(tmp_path) == []


def test_data_without_verb_prints_help(capsys):
    rc, out, err = _run(capsys, ["data"])
    assert rc == 2 and "make-shd" in out and "convert" in out
