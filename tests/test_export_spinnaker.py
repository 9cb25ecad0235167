"""SpiNNaker export: PyNN description, s16.15 emulator, routing keys, and the NEST verification.

The NEST tests run the written ``run_pynn.py`` with PyNN 0.13 + NEST 3.10 (``pip install -e ".[dev]"``
installs both); they are part of the default suite and fail, not skip, when NEST is missing."""
import json
import math
import py_compile

import numpy as np
import pytest
import torch

from neuroadapt.engine.models import SpikingClassifier
from neuroadapt.errors import InvalidInputError, ShapeError, UnsupportedOptionError
from neuroadapt.export import get_target
from neuroadapt.export.spinnaker import export_model
from neuroadapt.export.spinnaker.compare import coincidence, match_count, raster_times
from neuroadapt.export.spinnaker.convert import build_network, decay_from_tau, expand_counts, tau_from_decay
from neuroadapt.export.spinnaker.fixed import S1615_MAX, Emulator, from_s1615, to_s1615, to_u032
from neuroadapt.export.spinnaker.keys import decode_keys, routing_table, spike_keys

torch.set_num_threads(1)


def _model(neuron="leaky", reset="zero", recurrent=False, hidden=(12, 10), n_in=16, seed=0, gain=3.0, **kw):
    torch.manual_seed(seed)
    m = SpikingClassifier(n_in, 4, hidden=hidden, neuron=neuron, recurrent=recurrent, reset=reset,
                          beta=0.9, alpha=0.7, **kw).eval()
    with torch.no_grad():
        for layer in m.layers:
            layer.fc.weight.mul_(gain)
    return m


def _inputs(T=25, B=6, n=16, p=0.3, seed=1):
    return (torch.rand(T, B, n, generator=torch.Generator().manual_seed(seed)) < p).float()


def _reference(m, x):
    with torch.no_grad():
        _, rec = m(x, record=True)
    return rec


# ------------------------------------------------------------------------------ conversions
def test_tau_decay_conversion_both_ways():
    assert tau_from_decay(0.9, 1e-3) == pytest.approx(1.0 / -math.log(0.9))  # 9.491 ms
    assert decay_from_tau(20.0, 1e-3) == pytest.approx(math.exp(-1 / 20))
    beta = np.array([0.05, 0.5, 0.9, 0.999])
    for dt in (1e-4, 1e-3, 0.02):
        np.testing.assert_allclose(decay_from_tau(tau_from_decay(beta, dt), dt), beta, rtol=1e-12)
        tau = np.array([0.5, 5.0, 200.0])
        np.testing.assert_allclose(tau_from_decay(decay_from_tau(tau, dt), dt), tau, rtol=1e-9)
    for bad in (0.0, 1.0, 1.2, float("nan")):
        with pytest.raises(UnsupportedOptionError, match="strictly between 0 and 1"):
            tau_from_decay(bad, 1e-3)
    with pytest.raises(InvalidInputError):
        decay_from_tau(-1.0, 1e-3)


def test_network_parameters_in_pynn_units():
    m = _model("leaky", "subtract", recurrent=True, hidden=(8,))
    net = build_network(m, 1e-3, v_scale=10.0)
    hid = net.population("hidden0")
    assert hid.cell == "IF_curr_delta" and net.population("readout").cell == "IF_curr_delta"
    np.testing.assert_allclose(hid.params["tau_m"], tau_from_decay(0.9, 1e-3), rtol=1e-6)  # beta is float32
    np.testing.assert_allclose(hid.params["v_thresh"], 10.0)
    np.testing.assert_allclose(hid.params["v_reset"], 10.0 * (1 - 1 / 0.9), rtol=1e-6)  # subtract -> reset to theta(1 - 1/beta)
    ff = [q for q in net.projections if q.pre == "input" and q.post == "hidden0"]
    dense = np.zeros((8, 16))
    for q in ff:
        assert q.receptor == ("excitatory" if q.rows[0, 2] > 0 else "inhibitory")
        assert np.all(q.rows[:, 3] == 1.0)  # delays: one step of 1 ms
        dense[q.rows[:, 1].astype(int), q.rows[:, 0].astype(int)] = q.rows[:, 2]
    np.testing.assert_allclose(dense, m.layers[0].fc.weight.detach().double().numpy() * 10.0, rtol=1e-6)
    assert any(q.kind == "recurrent" for q in net.projections)
    bias = [q for q in net.projections if q.kind == "bias" and q.post == "hidden0"]
    got = np.zeros(8)
    for q in bias:
        got[q.rows[:, 1].astype(int)] = q.rows[:, 2]
    b = (m.layers[0].fc.bias + m.layers[0].neuron.recurrent.bias).detach().double().numpy()
    np.testing.assert_allclose(got, b * 10.0, rtol=1e-6)

    syn = build_network(_model("synaptic", "zero", hidden=(8,)), 1e-3)
    p = syn.population("hidden0")
    assert p.cell == "IF_curr_exp"
    np.testing.assert_allclose(p.params["tau_syn_E"], tau_from_decay(0.7, 1e-3), rtol=1e-6)
    np.testing.assert_allclose(p.params["tau_refrac"], 1.0)  # snnTorch's Synaptic zero reset drops the next step


@pytest.mark.parametrize("kw, match", [({"reset": "none"}, "reset mechanism 'none'"),
                                       ({"neuron": "leaky", "reset": "zero"}, None)])
def test_unsupported_models_are_named(kw, match):
    m = _model(**kw)
    if match is None:  # graded spikes
        m.layers[0].neuron.graded_spikes_factor = torch.tensor(0.5)
        match = "graded spikes"
    with pytest.raises(UnsupportedOptionError, match=match):
        build_network(m, 1e-3)
    with pytest.raises(UnsupportedOptionError, match="SpikingClassifier"):
        build_network(torch.nn.Linear(3, 3), 1e-3)


# ------------------------------------------------------------------------------ s16.15
def test_s1615_format():
    assert to_s1615(1.0)[()] == 32768 and to_s1615(-0.5)[()] == -16384
    assert to_s1615(2.0**-15)[()] == 1
    x = np.array([0.0, 1.25, -3.0517578125e-05, 1234.5678, -65536.0, S1615_MAX])
    np.testing.assert_allclose(from_s1615(to_s1615(x)), x, atol=2**-16)
    for bad in (65536.0, -65536.1, 1e9, float("nan")):
        with pytest.raises(InvalidInputError, match="s16.15"):
            to_s1615(bad, "test value")
    assert to_u032(0.5)[()] == 2**31 and to_u032(1.0)[()] == 2**32 - 1
    with pytest.raises(InvalidInputError):
        to_u032(1.5)


@pytest.mark.parametrize("neuron, recurrent", [("leaky", False), ("leaky", True)])
def test_emulator_float_twin_reproduces_neuroadapt_for_zero_reset(neuron, recurrent):
    """sPyNNaker's update (closed form, >= threshold, reset + refractory counter), in float64, on the
    exported parameters, gives neuroadapt's spikes step for step (lag 1 per layer)."""
    m, x = _model(neuron, "zero", recurrent), _inputs()
    rec = _reference(m, x)
    net = build_network(m, 1e-3)
    em = Emulator(net)
    out = em.run(x.numpy().astype(np.uint8), fixed=False)
    T = x.shape[0]
    for i, (s, _) in enumerate(rec["hidden"]):
        lag = out["lags"][f"hidden{i}"]
        assert s.sum() > 20
        np.testing.assert_array_equal(out[f"hidden{i}"][lag:lag + T], s.numpy())
    lag = out["lags"]["readout"]
    np.testing.assert_allclose(out["v_readout"][lag:lag + T] / net.v_scale, rec["readout"].numpy(), atol=1e-5)
    fixed = em.run(x.numpy().astype(np.uint8), fixed=True)
    for i in range(len(m.layers)):
        c = coincidence(raster_times(out[f"hidden{i}"], 1.0), raster_times(fixed[f"hidden{i}"], 1.0), 0.0)
        assert c["coincidence"] > 0.98
    assert np.abs(fixed["v_readout"] - out["v_readout"]).max() < 0.05  # mV, s16.15 rounding


@pytest.mark.parametrize("neuron, recurrent", [("leaky", True), ("synaptic", True), ("synaptic", False)])
def test_fir_mapping_makes_subtract_reset_exact(neuron, recurrent):
    """subtract="fir": memoryless cells + delay-line synapses reproduce snnTorch's reset by subtraction
    step for step (inputs no longer than fir_steps), in float and in s16.15."""
    m, x = _model(neuron, "subtract", recurrent), _inputs(T=20)
    rec = _reference(m, x)
    net = build_network(m, 1e-3, subtract="fir", fir_steps=20)
    assert {p.cell for p in net.populations if p.role == "hidden"} == {"IF_curr_delta"}
    assert max(float(q.rows[:, 3].max()) for q in net.projections) == 20.0
    for fixed in (False, True):
        out = Emulator(net).run(x.numpy().astype(np.uint8), fixed=fixed)
        for i, (s, _) in enumerate(rec["hidden"]):
            lag = out["lags"][f"hidden{i}"]
            np.testing.assert_array_equal(out[f"hidden{i}"][lag:lag + 20], s.numpy())
    std = Emulator(build_network(m, 1e-3)).run(x.numpy().astype(np.uint8), fixed=False)
    assert not np.array_equal(std["hidden0"][1:21], rec["hidden"][0][0].numpy())  # the reset mapping is not exact
    for bad in (0, 145, 2.5):
        with pytest.raises(UnsupportedOptionError, match="fir_steps"):
            build_network(m, 1e-3, subtract="fir", fir_steps=bad)


def test_overflow_raises_and_writes_nothing(tmp_path):
    m = _model(hidden=(6,))
    with torch.no_grad():
        m.layers[0].fc.weight[0, 0] = 1e4  # 1e5 mV at v_scale 10: outside s16.15
    with pytest.raises(InvalidInputError, match="s16.15"):
        export_model(m, tmp_path, dt=1e-3)
    assert list(tmp_path.iterdir()) == []
    with torch.no_grad():
        m.layers[0].fc.weight[0, 0] = float("nan")
    with pytest.raises(InvalidInputError, match="NaN"):
        export_model(m, tmp_path, dt=1e-3)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------ keys, metric, files
def test_routing_keys():
    table = routing_table([("input", 300), ("hidden0", 128), ("readout", 10)])
    assert table["mask"] == 0xFFFFF800
    firsts = [p["first_id"] for p in table["populations"]]
    assert firsts == [0, 512, 768]  # each population starts on a fresh 256-neuron core
    cores = table["populations"][0]["cores"]
    assert [c["p"] for c in cores] == [1, 2] and [c["n_atoms"] for c in cores] == [256, 44]
    keys = spike_keys(table, "hidden0", [0, 5, 127])
    assert keys[0] == (3 << 11) and keys[1] == (3 << 11) | 5  # core p = 1 + 512 // 256
    assert (keys & table["mask"] == table["populations"][1]["cores"][0]["base_key"]).all()
    assert decode_keys(table, keys) == [("hidden0", 0), ("hidden0", 5), ("hidden0", 127)]
    with pytest.raises(InvalidInputError):
        spike_keys(table, "hidden0", [128])


def test_coincidence_metric():
    assert match_count([1, 2, 3], [1, 2, 3], 0) == 3
    assert match_count([1, 2], [2, 3], 1) == 2      # one-to-one: 1<->2 and 2<->3
    assert match_count([5], [3, 5, 7], 1) == 1       # a spike is used once
    assert match_count([1, 10], [3], 1) == 0
    r = coincidence({(0, 0): [1.0, 5.0]}, {(0, 0): [2.0], (0, 1): [4.0]}, 1.0)
    assert (r["matched"], r["n_ref"], r["n_test"]) == (1, 2, 2) and r["coincidence"] == 0.5
    assert r["recall"] == 0.5 and r["precision"] == 0.5
    assert coincidence({}, {}, 1.0)["coincidence"] == 1.0
    t = raster_times(np.array([[[0, 1]], [[1, 0]]]), 2.0, shift=1)
    assert t == {(0, 1): [-2.0], (0, 0): [0.0]}


def test_files_written(tmp_path):
    assert get_target("spinnaker").export_model is export_model
    m = _model("synaptic", "zero", recurrent=True, hidden=(8,))
    report = export_model(m, tmp_path, dt=1e-3)
    assert sorted(report["files"]) == ["connections.npz", "network.json", "run_pynn.py"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(report["files"])
    doc = json.loads((tmp_path / "network.json").read_text())
    assert doc["h_ms"] == 1.0 and doc["routing"]["mask"] == 0xFFFFF800
    assert {p["label"]: p["cell"] for p in doc["populations"]}["hidden0"] == "IF_curr_exp"
    with np.load(tmp_path / "connections.npz") as z:
        assert len(z.files) == len(doc["projections"])
        for i, pr in enumerate(doc["projections"]):
            assert z[f"proj_{i}"].shape == (pr["n"], 4)
            assert (np.sign(z[f"proj_{i}"][:, 2]) == (1 if pr["receptor"] == "excitatory" else -1)).all()
    py_compile.compile(str(tmp_path / "run_pynn.py"), doraise=True)
    with pytest.raises(ShapeError):
        export_model(m, tmp_path / "x", dt=1e-3, verify=True, inputs=None)
    with pytest.raises(InvalidInputError, match="whole spike counts"):
        export_model(m, tmp_path / "y", dt=1e-3, verify=True, inputs=torch.full((5, 2, 16), 0.5), run_nest=False)
    assert not (tmp_path / "y").exists() or list((tmp_path / "y").iterdir()) == []


# ------------------------------------------------------------------------------ NEST (PyNN 0.13 + NEST 3.10)
@pytest.mark.parametrize("neuron, reset, recurrent, dt", [("leaky", "zero", True, 1e-3),
                                                         ("synaptic", "zero", False, 0.02)])
def test_nest_runs_the_pynn_script_spike_for_spike(tmp_path, neuron, reset, recurrent, dt):
    """Zero-reset models whose delays the grid can represent are exact on NEST (time step = dt, e.g.
    20 ms for spoken digits): every reference spike at the same step (after the documented per-layer
    lag) and the same readout membrane."""
    m, x = _model(neuron, reset, recurrent), _inputs(B=4)
    labels = torch.arange(4) % 4
    report = export_model(m, tmp_path, dt=dt, verify=True, inputs=x, labels=labels)
    assert json.loads((tmp_path / "network.json").read_text())["h_ms"] == pytest.approx(dt * 1e3)
    v = report["verification"]
    for label, c in v["nest"]["layers"].items():
        assert c["n_ref"] > 20 and c["coincidence"] == 1.0, (label, c)
        assert report["verification"]["reference"]["spikes"][label] == c["n_ref"]
    assert v["nest"]["readout_max_abs_err"] < 1e-4
    assert v["nest"]["accuracy"] == v["reference"]["accuracy"]
    assert report["spike_coincidence"] == 1.0 and report["spike_mismatches"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(report["files"])


def test_nest_immediate_zero_reset_is_exact(tmp_path):
    """reset_delay=False with a zero reset (the membrane zeroed at the spike, the next input counted):
    IF_curr_delta with v_reset = 0 and no refractory step, exact on NEST; subtract with
    reset_delay=False has no PyNN cell and is refused."""
    m, x = _model("leaky", "zero", recurrent=True, hidden=(12,), reset_delay=False), _inputs(B=3)
    report = export_model(m, tmp_path / "a", dt=1e-3, verify=True, inputs=x)
    c = report["verification"]["nest"]["layers"]["hidden0"]
    assert c["n_ref"] > 20 and c["coincidence"] == 1.0
    assert json.loads((tmp_path / "a" / "network.json").read_text())["populations"][1]["params"]["tau_refrac"][0] == 0.0
    sub = _model("leaky", "subtract")
    sub.layers[0].neuron.reset_delay = False  # SpikingClassifier refuses this combination itself
    with pytest.raises(UnsupportedOptionError, match="reset_delay=False"):
        build_network(sub, 1e-3)
    neg = _model("leaky", "zero")
    with torch.no_grad():
        neg.layers[0].neuron.threshold.fill_(-0.5)
    with pytest.raises(UnsupportedOptionError, match="thresholds must be positive"):
        build_network(neg, 1e-3)


def test_expand_counts():
    x = np.array([[[0, 2, 1]], [[3, 0, 0]]])  # (T=2, B=1, n=3) spike counts
    r = expand_counts(x, 3)
    assert r.shape == (2, 1, 9) and r.dtype == np.uint8
    np.testing.assert_array_equal(r.reshape(2, 3, 3).sum(1), x[:, 0])  # copies add back to the counts
    np.testing.assert_array_equal(r[1, 0], [1, 0, 0, 1, 0, 0, 1, 0, 0])
    with pytest.raises(InvalidInputError, match="input_copies >= 3"):
        expand_counts(x, 2)
    for bad in (np.full((2, 1, 3), 0.5), np.full((2, 1, 3), -1.0), np.full((2, 1, 3), np.nan)):
        with pytest.raises(InvalidInputError, match="whole spike counts"):
            expand_counts(bad, 3)


def test_nest_spike_count_inputs_are_exact(tmp_path):
    """Inputs with several spikes per channel and step (binned SHD / spoken digits): the export gives each
    channel input_copies source neurons (taken from the inputs' largest count); NEST and the emulator
    then reproduce neuroadapt exactly, and counts above input_copies are refused by the script."""
    m = _model("leaky", "zero", recurrent=True, hidden=(12,), gain=1.5)
    g = torch.Generator().manual_seed(3)
    x = torch.poisson(torch.full((20, 3, 16), 0.6), generator=g).clamp(max=3)
    assert x.max() == 3
    report = export_model(m, tmp_path, dt=0.02, verify=True, inputs=x)
    assert report["input_copies"] == 3
    doc = json.loads((tmp_path / "network.json").read_text())
    assert doc["input_channels"] == 16 and doc["populations"][0]["size"] == 48
    v = report["verification"]
    c = v["nest"]["layers"]["hidden0"]
    assert c["n_ref"] > 20 and c["coincidence"] == 1.0
    assert v["emulator"]["float"]["layers"]["hidden0"]["coincidence"] == 1.0
    assert v["nest"]["readout_max_abs_err"] < 1e-4
    from neuroadapt.export.spinnaker.runner import run_pynn
    from neuroadapt.errors import ReferenceUnavailableError
    with pytest.raises(ReferenceUnavailableError, match="input_copies"):
        run_pynn(tmp_path, np.full((4, 1, 16), 4, dtype=np.uint8))


def test_nest_fir_subtract_is_exact(tmp_path):
    m, x = _model("leaky", "subtract", recurrent=True, hidden=(12,)), _inputs(T=15, B=3)
    v = export_model(m, tmp_path, dt=1e-3, verify=True, inputs=x, subtract="fir", fir_steps=15)["verification"]
    c = v["nest"]["layers"]["hidden0"]
    assert c["n_ref"] > 20 and c["coincidence"] == 1.0
    assert v["nest"]["readout_max_abs_err"] < 1e-4


def test_nest_subtract_reset_is_an_approximation(tmp_path):
    """Reset by subtraction has no PyNN standard cell: NEST and the emulator's float twin, which share
    the reset-to-value mapping, agree with each other, and both fall short of neuroadapt."""
    m, x = _model("leaky", "subtract", hidden=(12,)), _inputs(B=3)
    v = export_model(m, tmp_path, dt=1e-3, verify=True, inputs=x)["verification"]
    nest, emu = v["nest"]["layers"]["hidden0"], v["emulator"]["float"]["layers"]["hidden0"]
    assert nest["matched"] == emu["matched"] and nest["n_test"] == emu["n_test"]
    assert nest["coincidence"] < 1.0 and nest["n_test"] < nest["n_ref"]  # the lost overshoot: fewer spikes


def test_cli_export_of_a_trained_run(tmp_path):
    """`neuroadapt export RUN --to spinnaker --verify` end to end on a tiny trained zero-reset run."""
    import yaml

    from neuroadapt.cli import main
    from neuroadapt.engine.run import train

    recipe = {"name": "tiny_spin", "dataset": {"name": "digits", "n_steps": 8, "max_train": 32, "max_test": 6},
              "model": {"hidden": [8], "recurrent": True, "reset": "zero"},
              "training": {"epochs": 1, "batch_size": 16, "eval_batch_size": 6, "threads": 1, "plots": False,
                           "progress": False}}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    train(tmp_path / "r.yaml", out=tmp_path / "run", echo=False)
    out = tmp_path / "spin"
    assert main(["export", str(tmp_path / "run"), "--to", "spinnaker", "--verify", "--n-verify", "4",
                 "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["target"] == "spinnaker" and m["dt"] == 1e-3 and m["verification"]["samples"] == 4
    assert m["spike_coincidence"] == 1.0 and m["spike_mismatches"] == 0
    assert m["verification"]["nest"]["argmax_agreement"] == 1.0
    assert m["verification"]["nest"]["all_layers"]["n_ref"] > 10  # the network does spike
    assert sorted(p.name for p in out.iterdir()) == ["connections.npz", "metrics.json", "network.json", "run_pynn.py"]


def test_cli_export_infers_input_copies_from_the_test_split(tmp_path):
    """Binned spoken digits carry several spikes per channel and step: `export --to spinnaker` (even
    without --verify) gives each channel as many source neurons as the test split's largest count."""
    import yaml

    from neuroadapt.cli import main
    from neuroadapt.data.spoken_digits import SpokenDigits
    from neuroadapt.engine.run import train

    recipe = {"name": "tiny_counts", "dataset": {"name": "spoken_digits", "max_train": 16, "max_test": 12},
              "model": {"hidden": [6], "recurrent": True, "reset": "zero", "reset_delay": False, "threshold": 0.1},
              "training": {"epochs": 1, "batch_size": 16, "eval_batch_size": 12, "threads": 1, "plots": False,
                           "progress": False}}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    train(tmp_path / "r.yaml", out=tmp_path / "run", echo=False)
    top = int(SpokenDigits(max_test=12).dense("test").max())
    assert top > 1
    assert main(["export", str(tmp_path / "run"), "--to", "spinnaker", "--out", str(tmp_path / "spin")]) == 0
    doc = json.loads((tmp_path / "spin" / "network.json").read_text())
    assert doc["input_copies"] == top and doc["populations"][0]["size"] == 700 * top
    assert json.loads((tmp_path / "spin" / "metrics.json").read_text())["input_copies"] == top
