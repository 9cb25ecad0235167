"""SHD HDF5 write / read / binning / Dataset, checked against tonic's SHD reader and ToFrame."""
from __future__ import annotations

import os
import pickle
import tempfile
from fractions import Fraction

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neuroadapt.data import shd as shd_mod
from neuroadapt.data.events import bin_batch, bin_spikes, check_events, n_bins_for
from neuroadapt.data.shd import SHDDataset, SHDFile, read_shd, shd_collate, write_shd
from neuroadapt.errors import DataError, InvalidInputError, ShapeError

FAST = settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def _random_set(rng, n=6, n_classes=20, max_spikes=400, t_max=1.6):
    times = [np.sort(rng.uniform(0, t_max, rng.integers(0, max_spikes))) for _ in range(n)]
    units = [rng.integers(0, 700, len(t)).astype(np.int64) for t in times]
    labels = rng.integers(0, n_classes, n)
    return times, units, labels


def _raw_h5(path, entries: dict):
    """Write an arbitrary HDF5 file (for malformed inputs): {path: (data, dtype)}."""
    with h5py.File(path, "w") as f:
        for name, (data, dtype) in entries.items():
            f.create_dataset(name, data=data, dtype=dtype)


def _vlen(arrays, dtype):
    out = np.empty(len(arrays), dtype=object)
    for i, a in enumerate(arrays):
        out[i] = np.asarray(a, dtype=dtype)
    return out


def _bad_shd(path, times, units, labels, tdt=np.float16, udt=np.uint16):
    _raw_h5(path, {
        "spikes/times": (_vlen(times, tdt), h5py.vlen_dtype(tdt)),
        "spikes/units": (_vlen(units, udt), h5py.vlen_dtype(udt)),
        "labels": (np.asarray(labels), None),
    })


# ------------------------------------------------------------------------------ round trip
samples = st.lists(
    st.tuples(
        st.lists(st.floats(0, 2.0, allow_nan=False, width=64), max_size=25),
        st.integers(0, 699),
        st.integers(0, 19),
        st.integers(0, 11),
    ),
    max_size=5,
)


def _unpack(draw):
    times = [np.sort(np.asarray(ts, dtype=np.float64)) for ts, *_ in draw]
    units = [((np.arange(len(t)) * 37 + u0) % 700).astype(np.int32) for t, (_, u0, _, _) in zip(times, draw)]
    labels = np.asarray([d[2] for d in draw], dtype=np.int64)
    speakers = np.asarray([d[3] for d in draw], dtype=np.int64)
    return times, units, labels, speakers


@FAST
@given(samples, st.sampled_from(["float16", "float32"]))
def test_roundtrip(draw, times_dtype):
    times, units, labels, speakers = _unpack(draw)
    keys = [f"word-{k}" for k in range(20)]
    meta = {"gender": ["female", "male"] * 6, "age": np.arange(20, 32), "body_height": np.linspace(1.5, 1.9, 12)}
    with tempfile.TemporaryDirectory() as d:
        path = write_shd(os.path.join(d, "x.h5"), times, units, labels, speakers, keys, meta,
                         times_dtype=times_dtype)
        got = read_shd(path)
    assert got.times_dtype == np.dtype(times_dtype) and got.units_dtype == np.uint16
    assert len(got.times) == len(times)
    for t, u, gt, gu in zip(times, units, got.times, got.units):
        np.testing.assert_array_equal(gt, t.astype(times_dtype))  # exactly the dtype's rounding
        np.testing.assert_array_equal(gu, u)
        if times_dtype == "float16":  # half-ulp: 2^-11 relative, 2^-25 absolute (subnormals)
            bound = np.maximum(np.abs(t) * 2.0**-11, 2.0**-25)
            assert (np.abs(gt.astype(np.float64) - t) <= bound).all()
            assert (np.abs(gt.astype(np.float64) - t) <= 0.49e-3).all()  # < 0.49 ms below 2 s
    np.testing.assert_array_equal(got.labels, labels)
    np.testing.assert_array_equal(got.speakers, speakers)
    assert got.keys == keys
    assert list(got.meta_info["gender"]) == meta["gender"]
    np.testing.assert_array_equal(got.meta_info["age"], meta["age"])
    np.testing.assert_allclose(got.meta_info["body_height"], meta["body_height"])


def test_layout_and_dtypes(tmp_path):
    times, units, labels = _random_set(np.random.default_rng(0), n=4)
    path = write_shd(tmp_path / "shd_train.h5", times, units, labels, speakers=[0, 1, 2, 1])
    with h5py.File(path, "r") as f:
        assert h5py.check_vlen_dtype(f["spikes/times"].dtype) == np.float16
        assert h5py.check_vlen_dtype(f["spikes/units"].dtype) == np.uint16
        assert f["labels"].dtype == np.uint16 and f["extra/speaker"].dtype == np.uint16
        assert h5py.check_string_dtype(f["extra/keys"].dtype) is not None
        assert isinstance(f["extra/meta_info"], h5py.Group)
        assert isinstance(f["extra/keys"][0], bytes)
    assert os.listdir(tmp_path) == ["shd_train.h5"]  # no temp file left


def test_reader_accepts_other_dtypes(tmp_path):
    times = [np.array([0.0, 0.25, 0.5]), np.array([1.0])]
    units = [np.array([1, 2, 699]), np.array([0])]
    for tdt in (np.float16, np.float32, np.float64):
        for udt in (np.uint16, np.int32, np.int64, np.uint32):
            p = tmp_path / f"{np.dtype(tdt)}_{np.dtype(udt)}.h5"
            _bad_shd(p, times, units, np.array([3, 1], dtype=np.int8), tdt, udt)
            with SHDFile(p) as f:
                assert len(f) == 2 and f.n_classes == 4 and f.speakers is None
                t, u, y = f[0]
                assert t.dtype == np.float64 and u.dtype == np.int64 and y == 3
                np.testing.assert_array_equal(t, times[0])
                np.testing.assert_array_equal(u, units[0])
                assert f[-1][2] == 1
                with pytest.raises(IndexError):
                    f[2]


def test_empty_samples_allowed(tmp_path):
    path = write_shd(tmp_path / "e.h5", [np.array([]), np.array([0.1])],
                     [np.array([], np.int64), np.array([5])], [0, 1])
    with SHDFile(path) as f:
        t, u, y = f[0]
        assert len(t) == len(u) == 0 and y == 0
    ds = SHDDataset(path)
    assert ds[0][0].shape == (100, 700) and ds[0][0].sum() == 0
    write_shd(tmp_path / "none.h5", [], [], [])
    assert len(SHDFile(tmp_path / "none.h5")) == 0


# ------------------------------------------------------------------------------ binning
def _naive_bins(t, u, dt, n_bins, c):
    """Loop reference: edge k is the double nearest to the exact decimal k * dt."""
    edge = [float(Fraction(k) * Fraction(str(dt))) for k in range(n_bins + 1)]
    out = np.zeros((n_bins, c))
    for ti, ui in zip(t.astype(np.float64), u):
        k = 0
        while k < n_bins and edge[k + 1] <= ti:
            k += 1
        if k < n_bins and edge[k] <= ti:
            out[k, ui] += 1
    return out


@FAST
@given(samples, st.sampled_from([(0.014, 1.4), (0.001, 0.05), (0.25, 1.0), (0.1, 0.3)]))
def test_binning(draw, window):
    dt, duration = window
    times, units, _, _ = _unpack(draw)
    for t, u in zip(times, units):
        frames = bin_spikes(t, u, 700, dt, duration)
        n_bins = n_bins_for(dt, duration)
        assert frames.shape == (n_bins, 700) and frames.dtype == np.float32
        assert frames.sum() == (t < duration).sum()  # spikes past the window dropped
        np.testing.assert_array_equal(frames, _naive_bins(t, u, dt, n_bins, 700))
    if times:
        batch = bin_batch(times, units, 700, dt, duration)
        assert batch.shape == (n_bins_for(dt, duration), len(times), 700)
        for b, (t, u) in enumerate(zip(times, units)):
            np.testing.assert_array_equal(batch[:, b], bin_spikes(t, u, 700, dt, duration))


def test_binning_edges_and_params():
    f = bin_spikes(np.array([0.0, 0.014, 0.0139, 1.3999, 1.4, 5.0]), np.array([0, 1, 2, 3, 4, 5]))
    assert f[0, 0] == 1 and f[1, 1] == 1 and f[0, 2] == 1 and f[99, 3] == 1 and f.sum() == 4
    assert bin_spikes([], np.array([], np.int64), 10, 0.1, 1.0).shape == (10, 10)
    assert bin_batch([], [], 10, 0.1, 1.0).shape == (10, 0, 10)
    for dt, dur in [(0.0, 1.4), (-1, 1.4), (0.014, float("nan")), (0.3, 1.0), ("a", 1.0)]:
        with pytest.raises(InvalidInputError):
            bin_spikes([0.1], [1], 700, dt, dur)
    with pytest.raises(InvalidInputError):
        bin_spikes([0.1], [1], 0)
    with pytest.raises(DataError):
        bin_spikes([0.1], [700])
    with pytest.raises(ShapeError):
        bin_batch([np.array([0.1])], [], 700)


# ------------------------------------------------------------------------------ tonic
def _tonic_folder(tmp_path, name, times, units, labels, **kw):
    """Our file where tonic's SHD/SSC expects it: <root>/<Class>/<name>.h5.

    tonic's HSD._check_exists() wants the downloaded archive (no checksum, only presence:
    _is_file_present() calls check_integrity without md5) plus one .h5 in the folder, else it
    downloads. An empty placeholder "<name>.h5.zip" makes the stock class use our file."""
    folder = tmp_path / ("SHD" if name.startswith("shd") else "SSC")
    folder.mkdir()
    write_shd(folder / name, times, units, labels, **kw)
    (folder / (name + ".zip")).write_bytes(b"")
    return tmp_path


def test_tonic_reads_our_file(tmp_path):
    tonic = pytest.importorskip("tonic")
    rng = np.random.default_rng(1)
    times, units, labels = _random_set(rng, n=8)
    times[3] = np.array([])  # a silent sample
    units[3] = np.array([], dtype=np.int64)
    times[4] = np.array([0.0, 0.014, 0.028, 1.3994, 1.4, 1.75])  # bin edges and past the window
    units[4] = np.array([0, 1, 2, 3, 4, 5])
    speakers = rng.integers(0, 12, 8)
    keys = [f"k{i}" for i in range(20)]
    root = _tonic_folder(tmp_path, "shd_train.h5", times, units, labels, speakers=speakers, keys=keys)
    ds = tonic.datasets.SHD(str(root), train=True)
    assert len(ds) == 8
    assert [k.decode() for k in ds.classes] == keys
    np.testing.assert_array_equal(ds.speaker, speakers)
    window = 14_000  # µs, 100 frames over 0..1.4 s
    to_frame = tonic.transforms.ToFrame(sensor_size=(700, 1, 1), time_window=window, start_time=0, end_time=1_400_000)
    ours = SHDFile(root / "SHD" / "shd_train.h5")
    for i in range(8):
        events, target = ds[i]
        t, u, y = ours[i]
        assert target == y == labels[i]
        stored = times[i].astype(np.float16).astype(np.float64)
        np.testing.assert_array_equal(events["t"], np.trunc(stored * 1e6).astype(np.int64))  # integer µs
        np.testing.assert_array_equal(events["x"], units[i])
        assert (events["p"] == 1).all()
        if len(events):
            frames = to_frame(events)[:, 0, :]
            np.testing.assert_array_equal(frames, bin_spikes(t, u, 700, 0.014, 1.4))
    ours.close()


@settings(max_examples=10, deadline=None, database=None)
@given(st.lists(st.floats(0, 2.0, allow_nan=False), min_size=1, max_size=60),
       st.sampled_from([(0.014, 1.4), (0.001, 0.1), (0.05, 1.0)]),
       st.sampled_from(["float16", "float32"]))
def test_tonic_toframe_matches_bin_spikes(ts, window, tdt):
    tonic = pytest.importorskip("tonic")
    dt, duration = window
    t = np.sort(np.asarray(ts)).astype(tdt)
    u = (np.arange(len(t)) * 13) % 700
    events = np.zeros(len(t), dtype=[("t", int), ("x", int), ("p", int)])
    events["t"] = t.astype(np.float64) * 1e6  # tonic's conversion: float64 µs, truncated
    events["x"], events["p"] = u, 1
    frames = tonic.transforms.ToFrame(sensor_size=(700, 1, 1), time_window=round(dt * 1e6), start_time=0,
                                      end_time=round(duration * 1e6))(events)[:, 0, :]
    np.testing.assert_array_equal(frames, bin_spikes(t, u, 700, dt, duration))


def test_tonic_ssc_and_our_dataset_35_classes(tmp_path):
    tonic = pytest.importorskip("tonic")
    times, units, labels = _random_set(np.random.default_rng(2), n=5, n_classes=35)
    labels[0] = 34
    keys = [f"cmd{i}" for i in range(35)]
    root = _tonic_folder(tmp_path, "ssc_test.h5", times, units, labels, keys=keys)
    ts = tonic.datasets.SSC(str(root), split="test")
    ds = SHDDataset(root / "SSC" / "ssc_test.h5")
    assert ds.n_classes == 35 and len(ts.classes) == 35 and ds.classes == keys
    for i in range(5):
        assert ts[i][1] == ds[i][1] == labels[i]


# ------------------------------------------------------------------------------ Dataset
def test_dataset_opens_once_and_batches(tmp_path, monkeypatch):
    times, units, labels = _random_set(np.random.default_rng(3), n=10)
    path = write_shd(tmp_path / "d.h5", times, units, labels)
    opened = []
    real = shd_mod._open_h5
    monkeypatch.setattr(shd_mod, "_open_h5", lambda p: opened.append(p) or real(p))
    ds = SHDDataset(path, dt=0.01, duration=1.0)
    assert ds.n_steps == 100 and ds.n_inputs == 700 and ds.n_classes == int(labels.max()) + 1
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.shape == (100, 700) and x.dtype == torch.float32 and y == labels[i]
        np.testing.assert_array_equal(x.numpy(), bin_spikes(times[i].astype(np.float16), units[i], 700, 0.01, 1.0))
    assert len(opened) == 1  # one handle, not one per sample
    x, y = shd_collate([ds[i] for i in (4, 1, 1)])
    xb, yb = ds.get_batch([4, 1, 1])
    assert x.shape == (100, 3, 700) and torch.equal(x, xb) and torch.equal(y, yb)
    ds2 = pickle.loads(pickle.dumps(ds))  # spawn-style workers: the handle is dropped, reopened
    assert torch.equal(ds2[4][0], ds[4][0])
    scaled = SHDDataset(path, dt=0.01, duration=1.0, transform=lambda f: f * 2, target_transform=lambda y: y + 1)
    xs, ys = scaled.get_batch([4, 1])
    assert torch.equal(xs, 2 * xb[:, :2]) and torch.equal(ys, yb[:2] + 1)


def test_dataloader_fork_workers(tmp_path):
    times, units, labels = _random_set(np.random.default_rng(4), n=12, max_spikes=50)
    path = write_shd(tmp_path / "w.h5", times, units, labels)
    ds = SHDDataset(path)
    ds[0]  # parent handle is open before the fork
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, collate_fn=shd_collate,
                                         multiprocessing_context="fork")
    xs, ys = zip(*loader)
    x, y = torch.cat(xs, dim=1), torch.cat(ys)
    assert x.shape == (100, 12, 700)
    np.testing.assert_array_equal(y.numpy(), labels)
    assert torch.equal(x, ds.get_batch(range(12))[0])


def test_n_classes_without_keys(tmp_path):
    p = tmp_path / "nokeys.h5"
    _bad_shd(p, [[0.1], [0.2]], [[1], [2]], [0, 6])
    assert SHDDataset(p).n_classes == 7


# ------------------------------------------------------------------------------ bad writes
GOOD_T = [np.array([0.1, 0.2]), np.array([0.3])]
GOOD_U = [np.array([1, 2]), np.array([3])]


@pytest.mark.parametrize("times,units,labels,kw,err,msg", [
    (GOOD_T, [np.array([1.0, 2.0]), np.array([3])], [0, 1], {}, DataError, "sample 0: unit ids must be integers"),
    ([np.array([-0.1, 0.2]), GOOD_T[1]], GOOD_U, [0, 1], {}, DataError, "negative"),
    ([np.array([0.2, 0.1]), GOOD_T[1]], GOOD_U, [0, 1], {}, DataError, "not sorted"),
    (GOOD_T, [np.array([1, 700]), np.array([3])], [0, 1], {}, DataError, "outside 0..699"),
    (GOOD_T, [np.array([1, 70]), np.array([3])], [0, 1], {"n_channels": 64}, DataError, "outside 0..63"),
    ([np.array([0.1, np.nan]), GOOD_T[1]], GOOD_U, [0, 1], {}, DataError, "finite"),
    ([np.array([0.1, 7e4]), GOOD_T[1]], GOOD_U, [0, 1], {}, DataError, "overflows float16"),
    ([np.array(["a"]), GOOD_T[1]], [np.array([1]), GOOD_U[1]], [0, 1], {}, DataError, "real numbers"),
    (GOOD_T, [np.array([1]), np.array([3])], [0, 1], {}, ShapeError, "sample 0: times has 2 spikes but units has 1"),
    (GOOD_T, GOOD_U[:1], [0, 1], {}, ShapeError, "times has 2 samples but units has 1"),
    (GOOD_T, GOOD_U, [0, 1, 2], {}, ShapeError, "labels has 3 entries"),
    (GOOD_T, GOOD_U, [0.0, 1.0], {}, DataError, "labels must be integers"),
    (GOOD_T, GOOD_U, [0, -1], {}, DataError, "labels must be non-negative"),
    (GOOD_T, GOOD_U, [0, 1], {"speakers": [0]}, ShapeError, "speakers has 1 entries"),
    (GOOD_T, GOOD_U, [0, 5], {"keys": ["a", "b"]}, ShapeError, "keys names 2 classes"),
    (GOOD_T, GOOD_U, [0, 1], {"speakers": [0, 3], "meta_info": {"age": [1, 2]}}, ShapeError, "indexed by speaker id"),
    (GOOD_T, GOOD_U, [0, 1], {"times_dtype": "int16"}, InvalidInputError, "times_dtype"),
    (GOOD_T, GOOD_U, [0, 1], {"units_dtype": "uint8"}, InvalidInputError, "units_dtype"),
    (np.zeros((2, 3)), GOOD_U, [0, 1], {}, ShapeError, "list of 1-D arrays"),
])
def test_bad_writes_leave_nothing(tmp_path, times, units, labels, kw, err, msg):
    with pytest.raises(err, match=msg):
        write_shd(tmp_path / "out.h5", times, units, labels, **kw)
    assert os.listdir(tmp_path) == []


def test_write_failure_midway_keeps_old_file(tmp_path, monkeypatch):
    path = write_shd(tmp_path / "out.h5", GOOD_T, GOOD_U, [0, 1])
    before = open(path, "rb").read()

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(h5py.Group, "create_group", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        write_shd(path, [np.array([0.5])], [np.array([9])], [3])
    assert os.listdir(tmp_path) == ["out.h5"] and open(path, "rb").read() == before


# ------------------------------------------------------------------------------ bad reads
def test_truncated_and_garbage_files(tmp_path):
    times, units, labels = _random_set(np.random.default_rng(5), n=20)
    path = write_shd(tmp_path / "full.h5", times, units, labels)
    data = open(path, "rb").read()
    for cut in (len(data) // 2, len(data) - 100, 100):
        p = tmp_path / f"cut{cut}.h5"
        p.write_bytes(data[:cut])
        with pytest.raises(DataError, match="truncated or corrupted"):
            f = SHDFile(p)
            for i in range(len(f)):
                f[i]
    (tmp_path / "junk.h5").write_bytes(os.urandom(4096))
    with pytest.raises(DataError, match="cannot be opened as HDF5"):
        SHDFile(tmp_path / "junk.h5")
    with pytest.raises(DataError, match="not found"):
        SHDFile(tmp_path / "missing.h5")


def test_foreign_and_partial_layouts(tmp_path):
    _raw_h5(tmp_path / "foreign.h5", {"data": (np.random.rand(5, 5), None)})
    with pytest.raises(DataError, match="not an SHD-format file"):
        SHDFile(tmp_path / "foreign.h5")
    _raw_h5(tmp_path / "partial.h5", {"spikes/times": (_vlen([[0.1]], np.float16), h5py.vlen_dtype(np.float16)),
                                      "labels": (np.array([0]), None)})
    with pytest.raises(DataError, match="missing dataset 'spikes/units'"):
        SHDFile(tmp_path / "partial.h5")
    _raw_h5(tmp_path / "dense.h5", {"spikes/times": (np.zeros((1, 3)), None),
                                    "spikes/units": (np.zeros((1, 3), np.uint16), None),
                                    "labels": (np.array([0]), None)})
    with pytest.raises(DataError, match="'spikes/times' must be a 1-D variable-length"):
        SHDFile(tmp_path / "dense.h5")


@pytest.mark.parametrize("times,units,labels,tdt,udt,msg", [
    ([[0.1]], [[1.0]], [0], np.float16, np.float32, "'spikes/units' holds float32"),
    ([[1]], [[1]], [0], np.int32, np.uint16, "'spikes/times' holds int32"),
    ([[0.1]], [[1]], [0.0], np.float16, np.uint16, "'labels' must be a 1-D integer"),
    ([[0.1], [0.2]], [[1], [2]], [0], np.float16, np.uint16, "labels 1; they must be equal"),
    ([[0.1, -0.2]], [[1, 2]], [0], np.float32, np.uint16, "sample 0: spike time #1 is negative"),
    ([[0.1], [0.3, 0.2]], [[1], [1, 2]], [0, 1], np.float16, np.uint16, "sample 1: spike times are not sorted"),
    ([[0.1]], [[700]], [0], np.float16, np.uint16, "sample 0: unit id #0 is 700"),
    ([[0.1, 0.2]], [[1]], [0], np.float16, np.uint16, "sample 0: times has 2 spikes but units has 1"),
    ([[0.1]], [[-1]], [0], np.float16, np.int16, "outside 0..699"),
])
def test_malformed_files(tmp_path, times, units, labels, tdt, udt, msg):
    p = tmp_path / "bad.h5"
    _bad_shd(p, times, units, labels, tdt, udt)
    with pytest.raises(DataError, match=msg):
        with SHDFile(p) as f:
            for i in range(len(f)):
                f[i]


def test_reader_options(tmp_path):
    p = tmp_path / "opts.h5"
    _bad_shd(p, [[0.3, 0.2]], [[800, 2]], [0])
    with SHDFile(p, n_channels=1000, require_sorted=False) as f:
        t, u, _ = f[0]
        np.testing.assert_array_equal(u, [800, 2])
    p2 = tmp_path / "keys.h5"
    _raw_h5(p2, {"spikes/times": (_vlen([[0.1]], np.float16), h5py.vlen_dtype(np.float16)),
                 "spikes/units": (_vlen([[1]], np.uint16), h5py.vlen_dtype(np.uint16)),
                 "labels": (np.array([5]), None), "extra/keys": (np.array([b"a", b"b"]), None)})
    with pytest.raises(DataError, match="labels go up to 5 but extra/keys names only 2"):
        SHDFile(p2)
    with pytest.raises(ShapeError):
        check_events(np.zeros((2, 2)), np.zeros((2, 2), int))


def test_corrupted_bytes_give_data_error_or_valid_data(tmp_path):
    rng = np.random.default_rng(6)
    times, units, labels = _random_set(rng, n=20, max_spikes=200)
    data = open(write_shd(tmp_path / "ok.h5", times, units, labels), "rb").read()
    p = tmp_path / "corrupt.h5"
    for _ in range(30):
        d = bytearray(data)
        start = int(rng.integers(0, len(d) - 64))
        d[start:start + 64] = rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
        p.write_bytes(bytes(d))
        try:
            read_shd(p)  # flipped bytes may still decode to valid events: fine
        except DataError:
            pass  # anything else (an h5py / numpy traceback) fails the test


def test_unwritable_target_is_data_error(tmp_path):
    (tmp_path / "adir").mkdir()
    with pytest.raises(DataError, match="cannot write"):
        write_shd(tmp_path / "adir", GOOD_T, GOOD_U, [0, 1])
    assert os.listdir(tmp_path) == ["adir"] and os.listdir(tmp_path / "adir") == []
