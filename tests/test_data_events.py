"""Event forms and their conversions: dense tensors, tonic arrays, SHD samples/files, AER files.

Round trips are checked with hypothesis (small sizes); AER layouts bit by bit, including the
largest field values; malformed AER bytes must raise DataError; failed writes leave nothing.
"""
from __future__ import annotations

import os
import struct

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neuroadapt.data import aer as aer_mod
from neuroadapt.data.aer import (
    HEADER_SIZE,
    MAGIC,
    FlatLayout,
    LoihiLayout,
    SpiNNakerLayout,
    decode_aer,
    encode_aer,
    make_layout,
    read_aer,
    write_aer,
)
from neuroadapt.data.convert import (
    TONIC_DTYPE,
    convert_file,
    dense_to_tonic,
    from_tonic,
    read_events,
    to_tonic,
    tonic_to_dense,
)
from neuroadapt.data.events import (
    bin_spikes,
    dense_to_events,
    events_to_dense,
    events_to_dense_batch,
    seconds_to_ticks,
    ticks_to_seconds,
)
from neuroadapt.data.shd import read_shd, write_shd
from neuroadapt.errors import DataError, InvalidInputError, ShapeError

FAST = settings(max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
LAYOUTS = [FlatLayout(), SpiNNakerLayout(), LoihiLayout(), SpiNNakerLayout(4, 4, 4, 6, neurons_per_core=50,
                                                                           cores_per_chip=3, first_core=2),
           LoihiLayout(2, 3, 5, neurons_per_core=20, cores_per_chip=5)]


# ------------------------------------------------------------------------------ strategies
@st.composite
def dense(draw, batched=None, max_count=3):
    t = draw(st.integers(1, 12))
    n = draw(st.integers(1, 9))
    b = draw(st.integers(1, 4)) if (batched if batched is not None else draw(st.booleans())) else None
    shape = (t, n) if b is None else (t, b, n)
    flat = draw(st.lists(st.integers(0, max_count), min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
    return np.asarray(flat, dtype=np.int64).reshape(shape)


@st.composite
def tick_samples(draw, n_channels=None, max_tick=2**34):
    """A list of samples (sorted int64 ticks, int64 ids), and n_channels."""
    n_channels = n_channels or draw(st.integers(1, 1500))
    out = []
    for _ in range(draw(st.integers(0, 4))):
        k = np.sort(np.asarray(draw(st.lists(st.integers(0, max_tick), max_size=20)), dtype=np.int64))
        u = np.asarray(draw(st.lists(st.integers(0, n_channels - 1), min_size=len(k), max_size=len(k))),
                       dtype=np.int64)
        out.append((k, u))
    return out, n_channels


# ------------------------------------------------------------------------------ dense <-> events
@FAST
@given(dense(), st.sampled_from([0.014, 0.001, 1e-4, 1 / 3, 0.0125]), st.sampled_from(["numpy", "torch", "float"]))
def test_dense_events_dense_exact(x, dt, kind):
    src = {"numpy": x, "torch": torch.from_numpy(x), "float": x.astype(np.float32)}[kind]
    ev = dense_to_events(src, dt)
    if x.ndim == 2:
        t, u = ev
        assert (np.diff(t) >= 0).all() and len(t) == x.sum()
        back = events_to_dense(t, u, x.shape[-1], dt, x.shape[0], dtype=np.int64)
        np.testing.assert_array_equal(back, bin_spikes(t, u, x.shape[-1], dt, x.shape[0] * dt, dtype=np.int64))
    else:
        assert len(ev) == x.shape[1]
        back = events_to_dense_batch([e[0] for e in ev], [e[1] for e in ev], x.shape[-1], dt, x.shape[0],
                                     dtype=np.int64)
    np.testing.assert_array_equal(back, x)


@FAST
@given(dense(), st.sampled_from([0.014, 0.001, 1e-6, 0.0025]))
def test_dense_tonic_dense_exact(x, dt):
    ev = dense_to_tonic(x, dt)
    evs = [ev] if x.ndim == 2 else ev
    for e in evs:
        assert e.dtype == TONIC_DTYPE and (e["p"] == 1).all() and (np.diff(e["t"]) >= 0).all()
    back = [tonic_to_dense(e, x.shape[-1], dt, x.shape[0], dtype=np.int64) for e in evs]
    np.testing.assert_array_equal(back[0] if x.ndim == 2 else np.stack(back, axis=1), x)


def test_dense_batch_first_and_bad_tensors():
    x = np.zeros((2, 5, 3), dtype=np.uint8)  # (B, T, N)
    x[1, 4, 2] = 2
    ev = dense_to_events(x, 0.01, batch_first=True)
    assert len(ev) == 2 and len(ev[0][0]) == 0
    np.testing.assert_allclose(ev[1][0], [0.04, 0.04])
    np.testing.assert_array_equal(ev[1][1], [2, 2])
    for bad, err in [(np.full((3, 2), 0.5), InvalidInputError), (np.full((3, 2), -1), InvalidInputError),
                     (np.full((3, 2), np.nan), InvalidInputError), (np.zeros(4), ShapeError)]:
        with pytest.raises(err):
            dense_to_events(bad, 0.01)
    with pytest.raises(InvalidInputError, match="whole number of µs"):
        dense_to_tonic(np.ones((2, 2)), 1 / 3)
    with pytest.raises(InvalidInputError):
        dense_to_events(np.ones((2, 2)), 0.0)


# ------------------------------------------------------------------------------ seconds <-> ticks, tonic
def test_tonic_dtype_is_tonics():
    tonic = pytest.importorskip("tonic")
    assert TONIC_DTYPE == tonic.datasets.SHD.dtype


@FAST
@given(st.lists(st.floats(0, 3.0, allow_nan=False), max_size=40), st.sampled_from(["float16", "float32", "float64"]))
def test_shd_tonic_shd_within_tonics_quantisation(ts, tdt):
    """SHD times -> tonic (exactly tonic's own formula) -> SHD times of the same dtype: within
    1 µs (tonic truncates to whole µs), and exact where the dtype's spacing exceeds 1 µs."""
    t = np.sort(np.asarray(ts)).astype(tdt)
    u = (np.arange(len(t)) * 7) % 700
    ev = to_tonic(t, u)
    # tonic.datasets.SHD: make_structured_array(times.astype(float64) * 1e6, units, 1, dtype=...)
    np.testing.assert_array_equal(ev["t"], (t.astype(np.float64) * 1e6).astype(np.int64))
    np.testing.assert_array_equal(ev["x"], u)
    back, bu = from_tonic(ev, dtype=tdt)
    assert back.dtype == np.dtype(tdt)
    np.testing.assert_array_equal(bu, u)
    np.testing.assert_array_equal(to_tonic(back, bu), ev)  # same tonic events again
    err = np.abs(back.astype(np.float64) - t.astype(np.float64))
    assert (err < 1e-6).all()
    if tdt == "float16":
        big = t >= np.float16(2**-9)  # spacing below these >= 1.9 µs: exactly one float16 per µs
        np.testing.assert_array_equal(back[big], t[big])


@FAST
@given(st.lists(st.integers(0, 7_999_999), max_size=40), st.sampled_from(["float32", "float64"]))
def test_tonic_shd_tonic_exact(ticks, tdt):
    ev = np.zeros(len(ticks), dtype=TONIC_DTYPE)
    ev["t"] = np.sort(ticks)
    ev["x"] = np.arange(len(ticks)) % 700
    ev["p"] = 1
    t, u = from_tonic(ev, dtype=tdt)
    np.testing.assert_array_equal(to_tonic(t, u), ev)


def test_ticks_to_seconds_every_float16_at_1ns():
    """Every finite non-negative float16 survives seconds -> 1 ns ticks -> seconds bit-exactly."""
    v = np.arange(0, 0x7C00, dtype=np.uint16).view(np.float16)
    back = ticks_to_seconds(seconds_to_ticks(v, 1), 1, np.float16)
    np.testing.assert_array_equal(back.view(np.uint16), v.view(np.uint16))
    k = np.random.default_rng(0).integers(0, 2**52, 10_000)
    np.testing.assert_array_equal(seconds_to_ticks(ticks_to_seconds(k, 1), 1), k)
    with pytest.raises(DataError):
        seconds_to_ticks([-1.0])
    with pytest.raises(InvalidInputError):
        seconds_to_ticks([1.0], 0)


def test_tonic_arrays_checked():
    ev = np.zeros(3, dtype=TONIC_DTYPE)
    ev["t"] = [0, 5, 3]
    with pytest.raises(DataError, match="not sorted"):
        from_tonic(ev)
    ev["t"] = [0, 1, 2]
    ev["p"] = [0, 1, 0]
    with pytest.raises(DataError, match="polarities"):
        from_tonic(ev)
    ev["p"] = 0  # ToFrame sets p = 0 in place for 1-polarity sensors: still one polarity
    ev["x"] = [0, 700, 1]
    with pytest.raises(DataError, match="outside"):
        from_tonic(ev)
    with pytest.raises(DataError, match="not a tonic event array"):
        from_tonic(np.zeros(3))


# ------------------------------------------------------------------------------ AER layouts
def test_spinnaker_key_bit_fields():
    lay = SpiNNakerLayout()
    assert lay.widths == (8, 8, 5, 11) and lay.capacity == 256 * 16 * 256 * 256
    assert int(lay.pack(x=255, y=255, p=31, n=2047)) == 0xFFFFFFFF
    assert int(lay.pack(x=1, y=2, p=3, n=4)) == (1 << 24) | (2 << 16) | (3 << 11) | 4
    f = lay.unpack(np.uint32(0xFFFFFFFF))
    assert (int(f["x"]), int(f["y"]), int(f["p"]), int(f["n"])) == (255, 255, 31, 2047)
    # placement: 256 neurons per core on cores 1..16, then the next chip along x
    ids = np.array([0, 255, 256, 16 * 256 - 1, 16 * 256, 256 * 16 * 256, lay.capacity - 1])
    f = lay.unpack(lay.encode(ids))
    assert f["x"].tolist() == [0, 0, 0, 0, 1, 0, 255]
    assert f["y"].tolist() == [0, 0, 0, 0, 0, 1, 255]
    assert f["p"].tolist() == [1, 1, 2, 16, 1, 1, 16]
    assert f["n"].tolist() == [0, 255, 0, 255, 0, 0, 255]
    assert int(lay.encode([0])[0]) == 0x800  # core 1, neuron 0
    np.testing.assert_array_equal(lay.decode(lay.encode(ids)), ids)
    with pytest.raises(InvalidInputError):
        lay.encode([lay.capacity])
    with pytest.raises(InvalidInputError):
        lay.pack(x=256, y=0, p=0, n=0)
    with pytest.raises(DataError, match="field 'p' = 0"):
        lay.decode(lay.pack(x=0, y=0, p=0, n=0))  # the monitor core is not an application core
    with pytest.raises(DataError, match="field 'n' = 256"):
        lay.decode(lay.pack(x=0, y=0, p=1, n=256))
    full = SpiNNakerLayout(neurons_per_core=2048, cores_per_chip=32, first_core=0)
    assert full.capacity == 2**32 and int(full.encode([2**32 - 1])[0]) == 0xFFFFFFFF


def test_loihi_address_bit_fields():
    lay = LoihiLayout()
    assert lay.widths == (12, 7, 13) and lay.capacity == 1024 * 128 * 4096
    assert int(lay.pack(chip=4095, core=127, neuron=8191)) == 0xFFFFFFFF
    assert int(lay.encode([1025])[0]) == (1 << 13) | 1  # core 1, compartment 1
    assert int(lay.encode([128 * 1024])[0]) == 1 << 20  # chip 1
    f = lay.unpack(lay.encode([lay.capacity - 1]))
    assert (int(f["chip"][0]), int(f["core"][0]), int(f["neuron"][0])) == (4095, 127, 1023)
    with pytest.raises(DataError, match="field 'neuron' = 1024"):
        lay.decode(lay.pack(chip=0, core=0, neuron=1024))
    small = LoihiLayout(2, 3, 5, neurons_per_core=20, cores_per_chip=5)  # 10 bits used
    with pytest.raises(DataError, match="bits above"):
        small.decode([1 << 10])
    with pytest.raises(DataError, match="field 'core' = 5"):
        small.decode(small.pack(chip=0, core=5, neuron=0))
    ids = np.arange(small.capacity)
    np.testing.assert_array_equal(small.decode(small.encode(ids)), ids)


@st.composite
def spinnaker_fields(draw):
    widths = draw(st.lists(st.integers(0, 11), min_size=4, max_size=4).filter(lambda w: 1 <= w[3] and sum(w) <= 32))
    lay = SpiNNakerLayout(*widths, neurons_per_core=draw(st.integers(1, 2 ** widths[3])), cores_per_chip=1,
                          first_core=0)
    values = {name: np.asarray(draw(st.lists(st.integers(0, 2**bits - 1), min_size=3, max_size=3)))
              for name, bits in lay.fields}
    return lay, values


@FAST
@given(spinnaker_fields())
def test_pack_unpack_any_widths(case):
    lay, values = case
    addr = lay.pack(**values)
    assert addr.dtype == np.uint32
    expected = np.zeros(3, dtype=np.uint64)
    shift = 32
    for name, bits in [("x", lay.x_bits), ("y", lay.y_bits), ("p", lay.p_bits), ("n", lay.n_bits)]:
        shift -= bits
        expected += values[name].astype(np.uint64) << np.uint64(shift)
    np.testing.assert_array_equal(addr.astype(np.uint64) << np.uint64(32 - sum(lay.widths)), expected)
    got = lay.unpack(addr)
    for name in values:
        np.testing.assert_array_equal(got[name], values[name])


@pytest.mark.parametrize("kwargs", [
    dict(x_bits=8, y_bits=8, p_bits=5, n_bits=12),             # 33 bits
    dict(n_bits=8, neurons_per_core=257),                        # more neurons than n can hold
    dict(p_bits=2, first_core=1, cores_per_chip=4),              # cores 1..4 need 3 bits
    dict(neurons_per_core=0),
])
def test_bad_spinnaker_layouts(kwargs):
    with pytest.raises(InvalidInputError):
        SpiNNakerLayout(**kwargs)


def test_make_layout():
    assert make_layout("loihi", neurons_per_core=100).neurons_per_core == 100
    with pytest.raises(InvalidInputError, match="unknown address layout"):
        make_layout("truenorth")
    with pytest.raises(InvalidInputError):
        make_layout("loihi", cores=3)


# ------------------------------------------------------------------------------ AER round trips
@FAST
@given(tick_samples(), st.integers(0, len(LAYOUTS) - 1), st.sampled_from([1, 1000, 12345]), st.integers(0, 5))
def test_events_aer_events_exact(samples, li, tick_ns, gap):
    samples, n_channels = samples
    lay = LAYOUTS[li]
    n_channels = min(n_channels, lay.capacity)
    samples = [(k, u % n_channels) for k, u in samples]
    labels = np.arange(len(samples)) % 20
    data = encode_aer([k for k, _ in samples], [u for _, u in samples], layout=lay, tick_ns=tick_ns,
                      n_channels=n_channels, labels=labels, speakers=labels[::-1].copy(), gap=gap,
                      meta={"keys": ["a", "ü"]})
    d = decode_aer(data)
    assert d.layout == lay and d.tick_ns == tick_ns and d.n_channels == n_channels
    assert d.meta == {"keys": ["a", "ü"]}
    np.testing.assert_array_equal(d.labels, labels)
    np.testing.assert_array_equal(d.speakers, labels[::-1])
    assert (np.diff(d.timestamps.astype(np.float64)) >= 0).all()  # one time line
    assert d.timestamp_bytes == (4 if int(d.timestamps.max(initial=0)) < 2**32 else 8)
    got = d.samples()
    assert len(got) == len(samples)
    for (k, u), (gk, gu) in zip(samples, got):
        np.testing.assert_array_equal(gk, k)
        np.testing.assert_array_equal(gu, u)
    np.testing.assert_array_equal(d.addresses, lay.encode(d.neuron_ids))
    again = encode_aer([k for k, _ in got], [u for _, u in got], layout=lay, tick_ns=tick_ns,
                       n_channels=n_channels, labels=labels, speakers=labels[::-1].copy(), gap=gap,
                       meta={"keys": ["a", "ü"]})
    assert again == data


@FAST
@given(st.lists(st.tuples(st.lists(st.floats(0, 1.6, allow_nan=False), max_size=15), st.integers(0, 699),
                          st.integers(0, 19), st.integers(0, 11)), max_size=4),
       st.sampled_from(["float16", "float32"]), st.sampled_from(["spinnaker", "loihi"]))
def test_shd_file_aer_shd_file(tmp_path_factory, draw, tdt, layout):
    """SHD file -> AER (1 ns ticks) -> SHD file: every field back bit-exactly for float16; float32
    times within 1 ns (exact where float32's spacing exceeds 1 ns, i.e. from ~8.4 ms)."""
    d = tmp_path_factory.mktemp("rt")
    times = [np.sort(np.asarray(ts)) for ts, *_ in draw]
    units = [(np.arange(len(t)) * 37 + u0) % 700 for t, (_, u0, _, _) in zip(times, draw)]
    labels = [x[2] for x in draw]
    speakers = [x[3] for x in draw]
    keys = [f"w{k}" for k in range(20)]
    src = write_shd(d / "a.h5", times, units, labels, speakers, keys, {"gender": ["f", "m"] * 6},
                    times_dtype=tdt)
    convert_file(src, d / "a.aer", layout=layout, tick_ns=1)
    convert_file(d / "a.aer", d / "b.h5")
    a, b = read_shd(src), read_shd(d / "b.h5")
    assert b.times_dtype == np.dtype(tdt) and b.keys == keys
    np.testing.assert_array_equal(b.labels, a.labels)
    np.testing.assert_array_equal(b.speakers, a.speakers)
    assert list(b.meta_info["gender"]) == list(a.meta_info["gender"])
    for ta, ua, tb, ub in zip(a.times, a.units, b.times, b.units):
        np.testing.assert_array_equal(ub, ua)
        if tdt == "float16":
            np.testing.assert_array_equal(tb.view(np.uint16), ta.view(np.uint16))
        else:
            assert (np.abs(tb.astype(np.float64) - ta) < 1e-9).all()
            big = ta >= 2**-6
            np.testing.assert_array_equal(tb[big], ta[big])


def test_aer_stamps_are_tonics_t(tmp_path):
    """SHD file -> AER at 1 µs: every time stamp equals the ``t`` that tonic's own SHD loader reads."""
    tonic = pytest.importorskip("tonic")
    rng = np.random.default_rng(5)
    times = [np.sort(rng.uniform(0, 1.4, k)) for k in (40, 0, 25)]
    units = [rng.integers(0, 700, len(t)) for t in times]
    (tmp_path / "SHD").mkdir()
    src = write_shd(tmp_path / "SHD" / "shd_test.h5", times, units, [1, 2, 3], times_dtype="float32")
    (tmp_path / "SHD" / "shd_test.h5.zip").write_bytes(b"")  # tonic only checks that the archive exists
    convert_file(src, tmp_path / "x.aer")
    ds = tonic.datasets.SHD(str(tmp_path), train=False)
    for (k, u), i in zip(read_aer(tmp_path / "x.aer").samples(), range(3)):
        events, label = ds[i]
        np.testing.assert_array_equal(k, events["t"])
        np.testing.assert_array_equal(u, events["x"])
        assert label == i + 1
    convert_file(src, tmp_path / "s.npy", sample=2)
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy"), ds[2][0])


def test_dense_npz_aer_dense_npz_exact(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 3, (30, 4, 50)).astype(np.uint8)
    np.savez(tmp_path / "x.npz", spikes=x, dt=0.014, labels=np.arange(4), keys=np.array(list("abcd")))
    convert_file(tmp_path / "x.npz", tmp_path / "x.aer", layout="loihi", layout_params={"neurons_per_core": 16})
    convert_file(tmp_path / "x.aer", tmp_path / "x.h5")
    convert_file(tmp_path / "x.h5", tmp_path / "y.npz", dt=0.014, duration=0.42)
    convert_file(tmp_path / "x.aer", tmp_path / "z.npz")  # the dt travels in the AER metadata
    for name in ("y.npz", "z.npz"):
        with np.load(tmp_path / name) as z:
            np.testing.assert_array_equal(z["spikes"], x)
            assert float(z["dt"]) == 0.014
            np.testing.assert_array_equal(z["labels"], np.arange(4))
            assert z["keys"].tolist() == list("abcd")
    es = read_events(tmp_path / "x.h5")
    np.testing.assert_array_equal(
        np.stack([bin_spikes(t, u, 50, 0.014, 0.42) for t, u in zip(es.times_as(), es.units)], 1), x)


# ------------------------------------------------------------------------------ malformed AER
def _good_aer(**kw) -> bytes:
    return encode_aer([np.array([0, 3, 3, 9]), np.array([1, 2])], [np.array([0, 1, 699, 5]), np.array([7, 8])],
                      n_channels=700, labels=[1, 2], meta={"keys": ["x"]}, **kw)


def _patch(data: bytes, offset: int, fmt: str, *values) -> bytes:
    b = bytearray(data)
    struct.pack_into(fmt, b, offset, *values)
    return bytes(b)


def _record_offset(i, ts_bytes=4):
    return HEADER_SIZE + i * (4 + ts_bytes)


GOOD = _good_aer()
TABLE = _record_offset(6)  # the sample table follows the 6 records
SP = SpiNNakerLayout()
MALFORMED = {
    "empty": (b"", "bad magic"),
    "bad magic": (b"XXAER\r\n\x1a" + GOOD[8:], "bad magic"),
    "text-mode mangled": (GOOD.replace(b"\r\n", b"\n", 1), "bad magic"),
    "header cut": (GOOD[:40], "truncated"),
    "records cut": (GOOD[:HEADER_SIZE + 20], "truncated"),
    "table cut": (GOOD[:-20], "truncated"),
    "trailing bytes": (GOOD + b"\0", "unexpected bytes"),
    "version": (_patch(GOOD, 8, "<H", 2), "version 2"),
    "timestamp width": (_patch(GOOD, 13, "<B", 3), "time-stamp width"),
    "layout code": (_patch(GOOD, 12, "<B", 9), "layout"),
    "flat with fields": (_patch(GOOD, 12, "<B", 0), "do not describe"),
    "layout widths": (_patch(GOOD, 44, "<4B", 9, 9, 9, 9), "layout"),
    "unsorted stamps": (_patch(GOOD, _record_offset(1) + 4, "<I", 100), "not sorted"),
    "neuron past n_channels": (_patch(GOOD, _record_offset(0), "<I", int(SP.encode([700])[0])), "outside 0..699"),
    "core out of range": (_patch(GOOD, _record_offset(0), "<I", int(SP.pack(x=0, y=0, p=17, n=0))), "field 'p'"),
    "neuron out of range": (_patch(GOOD, _record_offset(0), "<I", int(SP.pack(x=0, y=0, p=1, n=300))), "field 'n'"),
    "bad json": (GOOD[:-len(b'{"keys": ["x"]}')] + b'{"keys": [xx"]}', "JSON"),
    "table past records": (_patch(GOOD, TABLE, "<Q", 99), "past the"),
    "sample starts late": (_patch(GOOD, TABLE + 8, "<Q", 1), "outside its sample"),
    "samples overlap": (_patch(GOOD, TABLE + 24 + 8, "<Q", 5), "outside its sample"),
    "table out of order": (_patch(_patch(GOOD, TABLE + 8, "<Q", 20), TABLE + 24 + 8, "<Q", 10), "not in order"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_aer_is_data_error(tmp_path, name):
    data, msg = MALFORMED[name]
    with pytest.raises(DataError, match=msg):
        decode_aer(data)
    path = tmp_path / "bad.aer"
    path.write_bytes(data)
    with pytest.raises(DataError, match="bad.aer"):
        read_aer(path)


def test_every_truncation_is_data_error():
    for cut in range(len(GOOD)):
        with pytest.raises(DataError):
            decode_aer(GOOD[:cut])
    assert decode_aer(GOOD).n_samples == 2


def test_missing_and_folder():
    with pytest.raises(DataError, match="not found"):
        read_aer("/nonexistent/x.aer")
    with pytest.raises(DataError, match="folder"):
        read_aer(os.path.dirname(__file__))


def test_64bit_stamps_and_bad_arguments():
    d = decode_aer(encode_aer(np.array([0, 2**40]), np.array([1, 2])))
    assert d.timestamp_bytes == 8 and d.samples()[0][0].tolist() == [0, 2**40]
    with pytest.raises(InvalidInputError, match="not sorted"):
        encode_aer(np.array([3, 1]), np.array([0, 0]))
    with pytest.raises(InvalidInputError, match="outside"):
        encode_aer(np.array([1]), np.array([700]), n_channels=700)
    with pytest.raises(InvalidInputError, match="does not fit"):
        encode_aer(np.array([1]), np.array([0]), layout=LoihiLayout(1, 1, 2, neurons_per_core=4, cores_per_chip=2),
                   n_channels=17)
    with pytest.raises(InvalidInputError, match="timestamp_bytes"):
        encode_aer(np.array([2**33]), np.array([0]), timestamp_bytes=4)


# ------------------------------------------------------------------------------ nothing half-written
def _leftovers(folder):
    return sorted(p for p in os.listdir(folder))


def test_failed_writes_leave_nothing(tmp_path, monkeypatch):
    with pytest.raises(InvalidInputError):
        write_aer(tmp_path / "x.aer", np.array([3, 1]), np.array([0, 0]))
    assert _leftovers(tmp_path) == []
    write_aer(tmp_path / "x.aer", np.array([1, 2]), np.array([0, 0]))
    before = (tmp_path / "x.aer").read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(aer_mod.os, "replace", boom)
    with pytest.raises(DataError, match="disk full"):
        write_aer(tmp_path / "x.aer", np.array([5]), np.array([1]))
    monkeypatch.undo()
    assert _leftovers(tmp_path) == ["x.aer"] and (tmp_path / "x.aer").read_bytes() == before
    write_shd(tmp_path / "s.h5", [np.array([0.1]), np.array([0.2])], [np.array([1]), np.array([2])], [0, 1])
    with pytest.raises(InvalidInputError, match="one sample"):
        convert_file(tmp_path / "s.h5", tmp_path / "s.npy")
    with pytest.raises(InvalidInputError, match="--dt"):
        convert_file(tmp_path / "s.h5", tmp_path / "s.aer", dt=0.1)
    write_aer(tmp_path / "late.aer", np.array([0, 10**11]), np.array([0, 1]))  # 1e5 s: beyond float16
    with pytest.raises(DataError, match="overflows float16"):
        convert_file(tmp_path / "late.aer", tmp_path / "late.h5", times_dtype="float16")
    assert _leftovers(tmp_path) == ["late.aer", "s.h5", "x.aer"]


def test_tonic_npy_roundtrip(tmp_path):
    ev = dense_to_tonic(np.eye(5, 700, dtype=np.int64) * 2, 0.001)
    np.save(tmp_path / "e.npy", ev)
    convert_file(tmp_path / "e.npy", tmp_path / "e.aer")
    convert_file(tmp_path / "e.aer", tmp_path / "f.npy")
    got = np.load(tmp_path / "f.npy", allow_pickle=False)
    assert got.dtype == TONIC_DTYPE
    np.testing.assert_array_equal(got, ev)
    obj = np.empty(2, dtype=object)
    np.save(tmp_path / "o.npy", obj, allow_pickle=True)
    with pytest.raises(DataError, match="pickle"):
        read_events(tmp_path / "o.npy")
