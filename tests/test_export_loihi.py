"""Loihi export: quantiser, netx HDF5 layout, bit-exact emulator (default suite, no Lava needed).

The emulator is held against a scalar twin written here from the equations of the reference
sheet (§3.3: rtz decays, input << 6, 24-bit wrap on u, clip on v, spike on v > vth << 6, reset to
0, one-step synaptic delay) in plain Python integers.  Lava itself is the check in
tests/test_export_loihi_lava.py (``-m toolchain``).
"""
import json

import h5py
import numpy as np
import pytest
import torch

from neuroadapt.engine.exporting import export_run
from neuroadapt.engine.models import SpikingClassifier
from neuroadapt.engine.run import train
from neuroadapt.errors import DataError, InvalidInputError, ReferenceUnavailableError, ShapeError, \
    UnsupportedOptionError
from neuroadapt.export import get_target
from neuroadapt.export.loihi import NETWORK_FILE, emulate, export_model, read_netx, write_netx
from neuroadapt.export.loihi.emulator import aligned, netx_synapse_weights, readout_logits, simulate_exact
from neuroadapt.export.loihi.quantise import (LoihiLayer, LoihiNet, decay_from_fixed, decay_to_fixed,
                                              quantise_layer, quantise_model)


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    args = dict(hidden=(12,), recurrent=True, beta=0.9, threshold=1.0)
    args.update(kw)
    m = SpikingClassifier(10, 4, **args)
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(3)
    return m.eval()


# ----------------------------------------------------------------------------- quantiser
def test_decay_conversion_both_ways():
    for beta in (0.0, 0.5, 0.9, 0.95, 0.99, 1.0):
        d = decay_to_fixed(beta)
        assert 0 <= d <= 4096 and isinstance(d, int)
        assert abs(decay_from_fixed(d) - beta) <= 0.5 / 4096
    for d in (0, 1, 410, 2048, 4096):
        assert decay_to_fixed(decay_from_fixed(d)) == d
    with pytest.raises(InvalidInputError, match="outside"):
        decay_to_fixed(1.2)
    with pytest.raises(InvalidInputError, match="finite"):
        decay_to_fixed(float("nan"))


def test_quantised_layer_fits_the_formats():
    rng = np.random.default_rng(0)
    W = rng.normal(0, 0.3, (7, 5))
    layer = quantise_layer("l", W, rng.normal(0, 0.05, 7), beta=0.9, threshold=1.0)
    assert layer.weight.dtype == np.int64
    assert np.all(layer.weight % 2 == 0) and layer.weight.min() >= -256 and layer.weight.max() <= 254
    assert np.abs(layer.weight).max() == 254                 # the largest weight takes the full mantissa
    assert np.allclose(layer.weight / layer.scale, W, atol=1.0 / layer.scale)
    assert layer.v_th_mant == round(1.0 * layer.scale) and layer.v_decay == 410 and layer.i_decay == 4096


def test_overflowing_values_are_refused_with_the_field_named():
    W = np.full((2, 3), 0.5)
    with pytest.raises(InvalidInputError, match="8-bit weight mantissa"):
        quantise_layer("h", W, None, beta=0.9, threshold=1.0, scale=600.0)   # 0.5 * 600 = 300 > 254
    with pytest.raises(InvalidInputError, match="17-bit"):
        quantise_layer("h", W, None, beta=0.9, threshold=1000.0, scale=508.0)
    with pytest.raises(InvalidInputError, match="13-bit bias"):
        quantise_layer("h", W, np.array([20.0, 0.0]), beta=0.9, threshold=1.0, scale=508.0)
    with pytest.raises(InvalidInputError, match="too large next to the weights"):
        quantise_layer("h", W * 1e-6, None, beta=0.9, threshold=1.0)
    with pytest.raises(InvalidInputError, match="rounds to 0"):
        quantise_layer("h", W, None, beta=0.9, threshold=1e-4)
    with pytest.raises(InvalidInputError, match="not positive"):
        quantise_layer("h", W, None, beta=0.9, threshold=-1.0)
    with pytest.raises(InvalidInputError, match="all weights are zero"):
        quantise_layer("h", W * 0, None, beta=0.9, threshold=1.0)
    bad = W.copy()
    bad[1, 2] = np.nan
    with pytest.raises(InvalidInputError, match=r"h: weight holds 1 non-finite.*\(1, 2\)"):
        quantise_layer("h", bad, None, beta=0.9, threshold=1.0)
    with pytest.raises(ShapeError):
        quantise_layer("h", W, np.zeros(3), beta=0.9, threshold=1.0)


def test_model_mapping_and_unsupported_models():
    net = quantise_model(_model())
    assert [layer.name for layer in net.layers] == ["hidden0", "readout"]
    h, ro = net.layers
    assert h.weight_rec is not None and h.weight_rec.shape == (12, 12) and h.spiking
    assert not ro.spiking and ro.v_th_mant == 2 ** 17 - 1 and ro.i_decay == 4096
    # subtract reset: u is the membrane (iDecay from beta), v = u + bias, -theta on the diagonal
    assert net.notes["reset_mapped"] == ["hidden0: subtract->current (u is the membrane, -theta self-connection)"]
    assert (h.i_decay, h.v_decay) == (410, 4096)
    m0 = _model()
    V = m0.layers[0].neuron.recurrent.weight.detach().double().numpy()
    assert np.allclose(h.weight_rec / h.scale, V - np.eye(12), atol=1.01 / h.scale)
    m = _model()
    with torch.no_grad():
        m.layers[0].fc.weight[0, 0] = float("inf")
    with pytest.raises(InvalidInputError, match="hidden0: weight"):
        quantise_model(m)
    with pytest.raises(UnsupportedOptionError, match="reset 'none'"):
        quantise_model(_model(reset="none"))
    m = _model()
    m.layers[0].neuron.beta = torch.linspace(0.5, 0.9, 12)
    with pytest.raises(UnsupportedOptionError, match="beta differs between neurons"):
        quantise_model(m)
    with pytest.raises(UnsupportedOptionError, match="SpikingClassifier"):
        quantise_model(torch.nn.Linear(3, 4))
    zr = _model(reset="zero")
    assert quantise_model(zr).notes["reset_mapped"] == ["hidden0: zero(next step)->zero(at spike)"]
    zr.layers[0].neuron.reset_delay = False          # snnTorch then resets at the spike, like Loihi
    assert quantise_model(zr).notes["reset_mapped"] == []
    syn = quantise_model(_model(neuron="synaptic", alpha=0.75))
    assert syn.layers[0].i_decay == 1024 and syn.notes["bias_mapped"]
    assert syn.notes["reset_mapped"] == ["hidden0: subtract->zero"]


# ----------------------------------------------------------------------------- netx layout
def test_netx_layout_matches_lava_dl(tmp_path):
    net = quantise_model(_model(hidden=(12, 6)))
    path = write_netx(net, tmp_path / "n.net", t_sample=9)
    with h5py.File(path, "r") as f:
        assert sorted(f["layer"].keys()) == ["0", "1", "2", "3"]
        t = f["layer/0/type"]
        assert t.shape == (1,) and t.dtype.kind == "S" and t[0] == b"input"
        assert list(f["layer/0/shape"][()]) == [10]
        for i, kind, n_in, n_out in (("1", b"dense_rec", 10, 12), ("2", b"dense_rec", 12, 6), ("3", b"dense", 6, 4)):
            g = f["layer"][i]
            assert g["type"][0] == kind
            assert g["weight"].shape == (n_out, n_in) and g["weight"].dtype.kind == "i"
            assert int(g["inFeatures"][()]) == n_in and int(g["outFeatures"][()]) == n_out
            assert ("weight_rec" in g) == (kind == b"dense_rec")
            assert g["bias"].shape == (n_out,)
            n = g["neuron"]
            assert n["type"][0] == b"CUBA"
            assert {"iDecay", "vDecay", "vThMant", "refDelay", "gradedSpike"} <= set(n.keys())
            w = g["weight"][()]
            assert np.all(w % 2 == 0) and w.min() >= -256 and w.max() <= 254
        assert int(f["simulation/tSample"][()]) == 9
    back = read_netx(path)
    assert back.n_inputs == net.n_inputs and back.readout_mode == net.readout_mode and back.notes == net.notes
    for a, b in zip(net.layers, back.layers):
        assert a.name == b.name and a.spiking == b.spiking and a.scale == b.scale
        assert (a.i_decay, a.v_decay, a.v_th_mant) == (b.i_decay, b.v_decay, b.v_th_mant)
        assert np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias)
        assert (a.weight_rec is None) == (b.weight_rec is None)
        if a.weight_rec is not None:
            assert np.array_equal(a.weight_rec, b.weight_rec)


def test_malformed_netx_files_are_named(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_netx(tmp_path / "missing.net")
    (tmp_path / "junk.net").write_text("not hdf5")
    with pytest.raises(DataError, match="not an HDF5 file"):
        read_netx(tmp_path / "junk.net")
    with h5py.File(tmp_path / "nolayer.net", "w") as f:
        f.create_dataset("x", data=1)
    with pytest.raises(DataError, match="no /layer"):
        read_netx(tmp_path / "nolayer.net")
    path = write_netx(quantise_model(_model()), tmp_path / "conv.net")
    with h5py.File(path, "a") as f:
        del f["layer/1/type"]
        f["layer/1"].create_dataset("type", (1,), "S10", [b"conv"])
    with pytest.raises(DataError, match="'conv' is not supported"):
        read_netx(path)


def test_a_failed_write_leaves_nothing(tmp_path):
    net = quantise_model(_model())
    net.layers[1].weight = None  # breaks half-way through writing
    with pytest.raises(AttributeError):
        write_netx(net, tmp_path / "n.net")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- emulator
def _rtz(z):
    return -((-z) >> 12) if z < 0 else z >> 12


def _twin(net: LoihiNet, x: np.ndarray, n_steps: int):
    """Scalar twin from the reference equations, one neuron at a time, Python ints."""
    T, B, _ = x.shape
    out_s = [np.zeros((n_steps, B, layer.n_out), bool) for layer in net.layers]
    out_v = np.zeros((n_steps, B, net.layers[-1].n_out), np.int64)
    for b in range(B):
        u = [[0] * layer.n_out for layer in net.layers]
        v = [[0] * layer.n_out for layer in net.layers]
        a_next = [[0] * layer.n_out for layer in net.layers]
        for t in range(n_steps):
            a_now = a_next
            spikes = []
            for i, layer in enumerate(net.layers):
                s = []
                for n in range(layer.n_out):
                    cu = _rtz(u[i][n] * (4096 - layer.i_decay)) + (a_now[i][n] << 6)
                    if cu > 2 ** 23:
                        cu -= 2 ** 24
                    elif cu <= -2 ** 23:
                        cu += 2 ** 24
                    u[i][n] = cu
                    cv = _rtz(v[i][n] * (4096 - layer.v_decay)) + cu + (int(layer.bias[n]) << 6)
                    cv = max(-(2 ** 23 - 1), min(2 ** 23 - 1, cv))
                    fire = cv > (layer.v_th_mant << 6)
                    v[i][n] = 0 if fire else cv
                    s.append(fire)
                spikes.append(s)
                out_s[i][t, b] = s
            out_v[t, b] = v[-1]
            a_next = []
            for i, layer in enumerate(net.layers):
                pre = [int(c) for c in x[t, b]] if (i == 0 and t < T) else ([0] * net.n_inputs if i == 0 else
                                                                           [int(z) for z in spikes[i - 1]])
                acc = [sum(int(layer.weight[n, j]) * pre[j] for j in range(layer.n_in)) for n in range(layer.n_out)]
                if layer.weight_rec is not None:
                    for n in range(layer.n_out):
                        acc[n] += sum(int(layer.weight_rec[n, j]) * int(spikes[i][j]) for j in range(layer.n_out))
                a_next.append(acc)
    return out_s, out_v


def _random_net(rng, n_in=9, sizes=(7, 5), n_out=3, big=False):
    layers, width = [], n_in
    for k, n in enumerate(sizes):
        W = 2 * rng.integers(-128, 128, (n, width))
        if big:
            W = np.full((n, width), 254)
        R = 2 * rng.integers(-128, 128, (n, n)) if k % 2 == 0 else None
        layers.append(LoihiLayer(f"h{k}", W, rng.integers(-300, 300, n), int(rng.choice([0, 300, 4096])),
                                 int(rng.choice([0, 100, 2000])), int(rng.integers(50, 400)), R))
        width = n
    layers.append(LoihiLayer("ro", 2 * rng.integers(-128, 128, (n_out, width)), rng.integers(-50, 50, n_out),
                             4096, 409, 2 ** 17 - 1, None, spiking=False))
    return LoihiNet(layers, n_in)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_emulator_matches_the_scalar_twin(seed):
    rng = np.random.default_rng(seed)
    net = _random_net(rng)
    x = rng.poisson(0.6, (8, 3, net.n_inputs)) if seed == 2 else (rng.random((8, 3, net.n_inputs)) < 0.4)
    res = emulate(net, x)
    ts, tv = _twin(net, np.asarray(x, dtype=np.int64), res.n_steps)
    for mine, theirs in zip(res.spikes, ts):
        assert np.array_equal(mine, theirs)
    assert np.array_equal(res.v[-1], tv)
    assert sum(int(s.sum()) for s in res.spikes[:-1]) > 0   # the check is not vacuous


def test_emulator_wraps_u_and_clips_v_like_the_twin():
    rng = np.random.default_rng(5)
    net = _random_net(rng, n_in=40, sizes=(6,), big=True)
    net.layers[0].i_decay, net.layers[0].v_decay, net.layers[0].v_th_mant = 100, 50, 2 ** 17 - 1
    x = np.ones((6, 2, 40), bool)          # 40 * 254 * 64 * (many steps) overflows 24 bits
    x = np.repeat(x, 40, axis=0)
    res = emulate(net, x, record_v=True)
    assert res.v[0].max() == 2 ** 23 - 1 or res.v[0].min() == -(2 ** 23 - 1)
    ts, tv = _twin(net, x.astype(np.int64), res.n_steps)
    for mine, theirs in zip(res.spikes, ts):
        assert np.array_equal(mine, theirs)
    assert np.array_equal(res.v[-1], tv)


def test_netx_loading_is_lossless_for_exported_weights():
    rng = np.random.default_rng(3)
    for lo, hi in ((-128, 127), (0, 127), (-128, 0), (-5, 3), (1, 2), (-128, -1)):
        W = 2 * rng.integers(lo, hi + 1, (6, 8))
        if not W.any():
            continue
        R = 2 * rng.integers(lo, hi + 1, (6, 6))
        layer = LoihiLayer("l", W, np.zeros(6, int), 4096, 0, 10, R)
        (wf, ef), (wr, er) = netx_synapse_weights(layer)
        assert np.array_equal(np.right_shift(wf, -ef), W) and np.array_equal(np.right_shift(wr, -er), R)
        assert (wf % (1 << -ef) == 0).all()


def test_exactly_representable_network_reproduces_the_float_model():
    """No leak, zero reset, feed-forward, weights on the integer grid (k/127 -> 2k at scale 254),
    threshold half a step off the grid: the integer network and the float model must spike
    identically, Loihi one step later per layer, and give the same logits."""
    torch.manual_seed(0)
    m = SpikingClassifier(6, 3, hidden=(5,), recurrent=False, beta=1.0, threshold=1.0 + 1 / 254, reset="zero",
                          readout_beta=1.0, bias=False).eval()
    with torch.no_grad():
        w = torch.randint(-127, 128, (5, 6))
        w[0, 0] = 127
        m.layers[0].fc.weight.copy_(w / 127.0)
        r = torch.randint(-127, 128, (3, 5))
        r[0, 0] = 127
        m.readout.fc.weight.copy_(r / 127.0)
    net = quantise_model(m)
    assert net.layers[0].scale == 254 and net.layers[0].v_th_mant == 255
    assert np.array_equal(net.layers[0].weight, 2 * w.numpy())
    x = (torch.rand(12, 4, 6) < 0.5).float()
    with torch.no_grad():
        logits, rec = m(x, record=True)
    res = emulate(net, x.numpy())
    float_spikes = rec["hidden"][0][0].numpy().astype(bool)
    assert float_spikes.any() and not float_spikes.all()
    assert np.array_equal(aligned(net, res.spikes[0], 0, 12), float_spikes)
    assert np.allclose(readout_logits(net, res, 12), logits.numpy(), atol=1e-4)
    twin = quantise_model(m, exact=True)
    ex = simulate_exact(twin, x.numpy())
    assert all(np.array_equal(a, b) for a, b in zip(ex.spikes, res.spikes))
    assert np.allclose(ex.v[-1], res.v[-1])


def test_subtract_reset_maps_exactly_onto_the_current():
    """Subtract reset (recurrent, no leak, dyadic weights at scale 256): u carries the membrane and
    the -theta self-connection subtracts one step later, so Loihi spikes exactly as the float model."""
    torch.manual_seed(1)
    m = SpikingClassifier(6, 3, hidden=(5,), recurrent=True, beta=1.0, threshold=0.5, reset="subtract",
                          readout_beta=1.0, bias=False).eval()
    with torch.no_grad():
        for lin in (m.layers[0].fc, m.layers[0].neuron.recurrent, m.readout.fc):
            w = torch.randint(-127, 128, lin.weight.shape)
            w[0, 0] = 127
            lin.weight.copy_(w / 128.0)
        m.layers[0].neuron.recurrent.bias.zero_()
    net = quantise_model(m)
    assert net.layers[0].scale == 256 and net.layers[0].v_th_mant == 128 and net.layers[0].i_decay == 0
    x = (torch.rand(16, 4, 6) < 0.5).float()
    with torch.no_grad():
        logits, rec = m(x, record=True)
    res = emulate(net, x.numpy())
    float_spikes = rec["hidden"][0][0].numpy().astype(bool)
    assert float_spikes.any() and not float_spikes.all()
    assert np.array_equal(aligned(net, res.spikes[0], 0, 16), float_spikes)
    assert np.allclose(readout_logits(net, res, 16), logits.numpy(), atol=1e-5)


def test_emulator_rejects_bad_inputs():
    net = quantise_model(_model())
    with pytest.raises(ShapeError):
        emulate(net, np.zeros((3, 10)))
    with pytest.raises(ShapeError):
        emulate(net, np.zeros((3, 2, 11)))
    with pytest.raises(InvalidInputError, match="NaN"):
        emulate(net, np.full((3, 2, 10), np.nan))
    with pytest.raises(InvalidInputError, match="non-negative integer"):
        emulate(net, np.full((3, 2, 10), 0.5))


# ----------------------------------------------------------------------------- export target
TINY = {
    "name": "tiny",
    "dataset": {"name": "digits", "n_steps": 6, "max_train": 32, "max_test": 12},
    "model": {"hidden": [8], "recurrent": True},
    "training": {"epochs": 1, "batch_size": 16, "eval_batch_size": 12, "threads": 1, "plots": False,
                 "progress": False},
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    import yaml

    d = tmp_path_factory.mktemp("loihi")
    (d / "r.yaml").write_text(yaml.safe_dump(TINY))
    train(d / "r.yaml", out=d / "run", echo=False)
    return d / "run"


def test_registry_finds_the_loihi_target():
    assert get_target("loihi").export_model is export_model


def test_export_writes_the_netx_file(tiny_run, tmp_path):
    rep = export_run(tiny_run, "loihi", out=tmp_path / "x", echo=False)
    assert rep["files"] == [NETWORK_FILE] and (tmp_path / "x" / NETWORK_FILE).is_file()
    assert [layer["type"] for layer in rep["layers"]] == ["dense_rec", "dense"]
    saved = json.loads((tmp_path / "x" / "metrics.json").read_text())
    assert saved["target"] == "loihi" and saved["synaptic_delay_steps"] == 2
    assert read_netx(tmp_path / "x" / NETWORK_FILE).layers[0].n_out == 8


def test_verify_without_lava_says_how_to_create_it(tiny_run, tmp_path, monkeypatch):
    monkeypatch.setenv("NEUROADAPT_LAVA_VENV", str(tmp_path / "no-venv"))
    with pytest.raises(ReferenceUnavailableError, match="lava_env.py"):
        export_run(tiny_run, "loihi", out=tmp_path / "y", verify=True, echo=False)
    assert not (tmp_path / "y").exists() and not (tmp_path / "y.partial").exists()


def test_export_model_refuses_overflow_before_writing(tmp_path):
    m = _model()
    with torch.no_grad():
        m.layers[0].neuron.threshold.fill_(1e6)
    with pytest.raises(InvalidInputError, match="hidden0"):
        export_model(m, tmp_path, dt=1e-3)
    assert list(tmp_path.iterdir()) == []


def test_bench_without_lava_says_so(tmp_path, monkeypatch):
    from neuroadapt.engine import bench

    monkeypatch.setenv("NEUROADAPT_LAVA_VENV", str(tmp_path / "no-venv"))
    assert "loihi-emulator" in bench.list_benchmarks()
    with pytest.raises(ReferenceUnavailableError, match="lava_env.py"):
        bench.run_benchmark("loihi-emulator", quick=True)
