"""Events out (``neuroadapt export --to aer``): recorded spikes as SpiNNaker / Loihi AER streams,
tonic arrays and SHD files.  Files are checked by our readers (``verify``) and, independently, by
decoding the raw bytes with the documented bit layout, by tonic's own ``ToFrame`` and by h5py."""
import json
import os

import h5py
import numpy as np
import pytest
import snntorch as snn
import torch
import yaml
from torch import nn

from neuroadapt.engine.models import SpikingClassifier
from neuroadapt.errors import InvalidInputError, ShapeError
from neuroadapt.export.aer_out import export_model, record_spikes, tonic_samples, write_events

DT = 1e-3


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


def spikes_in(T=25, B=5, shape=(16,), p=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, *shape, generator=g) < p).float()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = SpikingClassifier(16, 4, hidden=(300, 10), threshold=0.5).eval()  # 300 > 256: two SpiNNaker cores
    x, labels = spikes_in(), torch.tensor([0, 1, 2, 3, 1])
    out = tmp_path_factory.mktemp("aer")
    rep = export_model(model, out, dt=DT, verify=True, inputs=x, labels=labels)
    return model, x, labels, out, rep, record_spikes(model, x)


def test_every_file_round_trips(exported):
    _, x, _, out, rep, rec = exported
    assert set(rep["layers"]) == {"input", "layers.0", "layers.1"}
    assert rep["spike_mismatches"] == 0 and len(rep["round_trip"]) == 12
    assert all(v == 0 for v in rep["round_trip"].values())
    assert sorted(os.listdir(out)) == rep["files"]
    for name, info in rep["layers"].items():
        assert info["spikes"] == int(rec[name].sum()) > 0
    assert rep["spike_count"] == rep["layers"]["layers.0"]["spikes"] + rep["layers"]["layers.1"]["spikes"]


def _raw_aer(path):
    """Parse a neuroadapt AER file with NumPy from the documented header layout (not our reader)."""
    raw = open(path, "rb").read()
    assert raw[:8] == b"NAAER\r\n\x1a"
    ts_bytes = raw[13]
    tick_ns, n_ch = np.frombuffer(raw[16:24], "<u4")
    n_rec, n_samp = np.frombuffer(raw[24:40], "<u8")
    meta_len = int(np.frombuffer(raw[40:44], "<u4")[0])
    rec = np.frombuffer(raw, np.dtype([("a", "<u4"), ("t", "<u4" if ts_bytes == 4 else "<u8")]), int(n_rec), 64)
    off = 64 + rec.nbytes
    table = np.frombuffer(raw, np.dtype([("first", "<u8"), ("start", "<u8"), ("label", "<i4"), ("spk", "<i4")]),
                          int(n_samp), off)
    meta = json.loads(raw[off + table.nbytes: off + table.nbytes + meta_len])
    return rec, table, meta, int(tick_ns), int(n_ch)


def _dense_from_raw(rec, table, ids, T, N, dt_us):
    dense = np.zeros((T, len(table), N), np.int64)
    ends = np.append(table["first"][1:], len(rec)).astype(np.int64)
    for b, (f, e, s) in enumerate(zip(table["first"].astype(np.int64), ends, table["start"].astype(np.int64))):
        k = (rec["t"][f:e].astype(np.int64) - s) // dt_us
        np.add.at(dense, (k, b, ids[f:e]), 1)
    return dense


def test_spinnaker_keys_decode_by_hand(exported):
    _, _, labels, out, rep, rec = exported
    r, table, meta, tick_ns, n_ch = _raw_aer(out / "layers_0.spinnaker.aer")
    assert tick_ns == 1000 and n_ch == 300 and meta["dt"] == DT and meta["n_steps"] == 25
    a = r["a"].astype(np.int64)
    x, y, p, n = a >> 24, (a >> 16) & 0xFF, (a >> 11) & 0x1F, a & 0x7FF  # 8 + 8 + 5 + 11 bits
    assert (x == 0).all() and (y == 0).all() and set(np.unique(p)) <= {1, 2}  # cores 1 and 2 of chip (0, 0)
    ids = (p - 1) * 256 + n
    assert (ids[p == 2] >= 256).all()
    dense = _dense_from_raw(r, table, ids, 25, 300, 1000)
    assert np.array_equal(dense, rec["layers.0"].numpy().astype(np.int64))
    assert np.array_equal(table["label"], labels.numpy())


def test_loihi_addresses_decode_by_hand(exported):
    _, _, _, out, _, rec = exported
    r, table, meta, _, _ = _raw_aer(out / "layers_0.loihi.aer")
    a = r["a"].astype(np.int64)
    chip, core, neuron = a >> 20, (a >> 13) & 0x7F, a & 0x1FFF  # 12 + 7 + 13 bits
    assert (chip == 0).all() and (core == 0).all() and meta["layout"] == "loihi"
    dense = _dense_from_raw(r, table, neuron, 25, 300, 1000)
    assert np.array_equal(dense, rec["layers.0"].numpy().astype(np.int64))


def test_tonic_arrays_read_by_tonic(exported):
    import tonic.transforms as tt

    _, _, _, out, _, rec = exported
    samples = tonic_samples(out / "layers_1.tonic.npy")
    to_frame = tt.ToFrame(sensor_size=(10, 1, 1), time_window=1000, start_time=0, end_time=25 * 1000,
                          include_incomplete=True)
    want = rec["layers.1"].numpy()
    assert len(samples) == 5 and sum(len(e) for e in samples) == want.sum() > 0
    for b, ev in enumerate(samples):
        assert ev.dtype.names == ("t", "x", "p")
        frames = to_frame(ev).reshape(-1, 10) if len(ev) else np.zeros((25, 10))
        assert np.array_equal(frames[:25], want[:, b, :]), b


def test_shd_file_read_with_h5py(exported):
    _, _, labels, out, _, rec = exported
    with h5py.File(out / "layers_0.shd.h5") as f:
        times, units = f["spikes/times"][:], f["spikes/units"][:]
        assert np.array_equal(f["labels"][:], labels.numpy())
    want = rec["layers.0"].numpy()
    for b in range(want.shape[1]):
        k = np.rint(times[b] / DT).astype(np.int64)  # spikes sit at the step starts
        np.testing.assert_allclose(times[b], k * DT, atol=1e-12)
        dense = np.zeros((25, 300))
        np.add.at(dense, (k, units[b].astype(np.int64)), 1)
        assert np.array_equal(dense, want[:, b, :])


def test_snntorch_conv_model_layers_are_recorded(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), snn.Leaky(0.9, threshold=0.5, init_hidden=True),
                          nn.Flatten(), nn.Linear(256, 10), snn.Leaky(0.8, threshold=0.3, init_hidden=True)).eval()
    x = spikes_in(shape=(2, 8, 8), p=0.4)
    rep = export_model(model, tmp_path, dt=DT, verify=True, inputs=x)
    assert set(rep["layers"]) == {"input", "1", "4"}
    assert rep["layers"]["1"]["shape"] == [4, 8, 8] and rep["layers"]["1"]["neurons"] == 256
    assert rep["spike_mismatches"] == 0 and rep["layers"]["4"]["spikes"] > 0


def test_bad_inputs_leave_nothing(tmp_path):
    model = SpikingClassifier(4, 2, hidden=(3,)).eval()
    with pytest.raises(InvalidInputError, match="needs input"):
        export_model(model, tmp_path, dt=DT)
    with pytest.raises(InvalidInputError, match="not spike counts"):
        write_events({"a": torch.ones(3, 2, 4), "b": torch.full((3, 2, 4), 0.5)}, tmp_path, DT)
    with pytest.raises(InvalidInputError, match="whole number of µs"):
        write_events({"a": torch.ones(3, 2, 4)}, tmp_path, 1.5e-7)
    with pytest.raises(ShapeError):
        record_spikes(model, torch.ones(3, 4))
    with pytest.raises(InvalidInputError, match="no spiking layer"):
        export_model(nn.Sequential(nn.Linear(4, 2)), tmp_path, dt=DT, inputs=torch.rand(3, 2, 4))
    rep = export_model(model, tmp_path, dt=DT, inputs=torch.rand(3, 2, 4) * 0.3, verify=True)
    assert "input_skipped" in rep and "input" not in rep["layers"] and rep["spike_mismatches"] == 0
    for f in rep["files"]:
        os.remove(tmp_path / f)
    assert os.listdir(tmp_path) == []


TINY = {
    "name": "tiny",
    "dataset": {"name": "digits", "n_steps": 6, "max_train": 32, "max_test": 12},
    "model": {"hidden": [8]},
    "training": {"epochs": 1, "batch_size": 16, "eval_batch_size": 12, "threads": 1, "plots": False,
                 "progress": False},
}


def test_cli_export_aer_end_to_end(tmp_path, capsys):
    from neuroadapt.cli import main
    from neuroadapt.engine.run import train

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(TINY))
    run = tmp_path / "run"
    train(str(recipe), out=str(run), echo=False)
    assert main(["export", str(run), "--to", "aer"]) == 0  # runs the model without --verify too
    rep = json.loads((run / "export-aer" / "metrics.json").read_text())
    assert rep["samples"] == 12 and "round_trip" not in rep and rep["task"] == "classification"
    assert main(["export", str(run), "--to", "aer", "--verify", "--out", str(tmp_path / "v")]) == 0
    rep = json.loads((tmp_path / "v" / "metrics.json").read_text())
    assert rep["spike_mismatches"] == 0 and rep["layers"]["input"]["spikes"] > 0
