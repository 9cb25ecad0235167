"""NIR export/import: parameter conventions, exact spikes of every neuron form through our importer
(checked against the source model and hand-written updates), files, errors and the CLI.  Other
readers (Norse, snnTorch) are in test_export_nir_interop.py."""
import logging
import os
import warnings

import h5py
import nir
import numpy as np
import pytest
import snntorch as snn
import torch
from torch import nn

from neuroadapt.engine.models import SpikingClassifier
from neuroadapt.errors import DataError, InvalidInputError, ShapeError, UnsupportedOptionError
from neuroadapt.export.nir import (export_model, from_nir, read_nir, to_continuous, to_discrete, to_nir,
                                   write_nir)
from neuroadapt.export.nir.verify import verify_graph

DT = 1e-3
warnings.filterwarnings("ignore", message=".*nirtorch.load.*")


@pytest.fixture(autouse=True)
def _quiet():
    torch.set_num_threads(1)
    logging.getLogger().setLevel(logging.ERROR)


def spikes_in(T=40, B=6, n=16, p=0.3, seed=0, shape=None):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, *(shape or (n,)), generator=g) < p).float()


# ----------------------------------------------------------------------------- conventions
def test_to_continuous_matches_the_snntorch_convention():
    beta, alpha = np.array([0.0, 0.5, 0.9, 0.99]), np.array([0.1, 0.5, 0.8, 0.95])
    p = to_continuous(DT, beta, alpha=alpha)
    np.testing.assert_allclose(p["tau_mem"], DT / (1 - beta))
    np.testing.assert_allclose(p["r"], p["tau_mem"] / DT)           # R = tau/dt: unit input gain
    np.testing.assert_allclose(p["tau_syn"], DT / (1 - alpha))
    np.testing.assert_allclose(p["w_in"], p["tau_syn"] / DT)
    np.testing.assert_array_equal(p["v_leak"], 0)


def test_round_trip_discrete_continuous_discrete():
    rng = np.random.default_rng(0)
    d = dict(beta=rng.uniform(0, 0.999, 50), gain=rng.uniform(-2, 2, 50), offset=rng.uniform(-1, 1, 50),
             alpha=rng.uniform(0, 0.999, 50), syn_gain=rng.uniform(0.1, 3, 50))
    c = to_continuous(DT, **d)
    back = to_discrete(DT, c["tau_mem"], c["r"], c["v_leak"], tau_syn=c["tau_syn"], w_in=c["w_in"])
    for k, v in d.items():
        np.testing.assert_allclose(back[k], v, rtol=1e-9, atol=1e-12, err_msg=k)


def test_round_trip_continuous_discrete_continuous():
    rng = np.random.default_rng(1)
    c = dict(tau_mem=rng.uniform(DT, 0.1, 50), r=rng.uniform(0.1, 50, 50), v_leak=rng.uniform(-1, 1, 50),
             tau_syn=rng.uniform(DT, 0.05, 50), w_in=rng.uniform(0.5, 5, 50))
    d = to_discrete(DT, **c)
    back = to_continuous(DT, d["beta"], gain=d["gain"], offset=d["offset"], alpha=d["alpha"], syn_gain=d["syn_gain"])
    for k, v in c.items():
        np.testing.assert_allclose(back[k], v, rtol=1e-9, err_msg=k)


def test_integrators_and_bad_parameters():
    p = to_continuous(DT, 1.0, gain=1.0)
    assert np.isinf(p["tau_mem"]) and p["r"] == pytest.approx(1 / DT)
    assert to_discrete(DT, None, r=1 / DT)["gain"] == pytest.approx(1.0)
    with pytest.raises(InvalidInputError, match="shorter than dt"):
        to_discrete(DT, tau_mem=1e-5)
    with pytest.raises(InvalidInputError, match="beta must lie"):
        to_continuous(DT, 1.5)
    with pytest.raises(InvalidInputError, match="NaN"):
        to_continuous(DT, np.array([0.5, np.nan]))
    with pytest.raises(InvalidInputError, match="dt"):
        to_continuous(0.0, 0.5)


# ----------------------------------------------------------------------------- neuroadapt -> NIR -> neuroadapt
CLASSIFIERS = {
    "leaky-zero": dict(neuron="leaky", reset="zero"),
    "leaky-subtract-recurrent": dict(neuron="leaky", reset="subtract", recurrent=True),
    "leaky-none": dict(neuron="leaky", reset="none"),
    "synaptic-subtract": dict(neuron="synaptic", reset="subtract"),
    "synaptic-none-recurrent": dict(neuron="synaptic", reset="none", recurrent=True),
}


@pytest.mark.parametrize("name", list(CLASSIFIERS))
def test_classifier_round_trip_is_exact(name):
    torch.manual_seed(0)
    model = SpikingClassifier(16, 5, hidden=(24, 12), threshold=0.5, beta=0.85, alpha=0.7, **CLASSIFIERS[name]).eval()
    graph, info = to_nir(model, DT, return_info=True)
    x = spikes_in()
    rep = verify_graph(model, graph, info, x, DT)
    ours = rep["importer"]
    assert ours["spikes_source"] > 50  # the layers do spike: the comparison means something
    assert ours["spike_mismatches"] == 0, ours
    assert ours["max_abs_diff_output"] < 1e-5
    types = {type(n).__name__ for n in graph.nodes.values()}
    assert ("LIF" in types) == (name == "leaky-zero") and ("Threshold" in types) == (name != "leaky-zero")
    assert rep["norse"]["status"] == ("partial" if name == "leaky-zero" else "not importable")


def test_sequence_layers_and_one_to_one_recurrence():
    from neuroadapt.nn import LIFLayer, LIReadout

    torch.manual_seed(4)
    seq = nn.Sequential(LIFLayer(16, 20, neuron="synaptic", threshold=0.5), LIReadout(20, 3)).eval()
    rleaky = _seq(nn.Linear(16, 20), snn.RLeaky(0.85, V=0.3, all_to_all=False, threshold=0.5, init_hidden=True))
    for model in (seq, rleaky):
        graph, info = to_nir(model, DT, return_info=True)
        rep = verify_graph(model, graph, info, spikes_in(), DT)
        assert rep["importer"]["spike_mismatches"] == 0 and rep["importer"]["spikes_source"] > 0
        assert rep["importer"]["max_abs_diff_output"] < 1e-5
    np.testing.assert_allclose(np.diag(graph.nodes["1_rec"].weight), 0.3, rtol=1e-6)


def test_recurrent_layer_is_a_cycle_and_subtract_is_explicit():
    torch.manual_seed(0)
    model = SpikingClassifier(8, 3, hidden=(6,), recurrent=True, reset="subtract").eval()
    g = to_nir(model, DT)
    assert ("layers_0_lif_spk", "layers_0_lif_rec") in g.edges and ("layers_0_lif_rec", "layers_0_lif_mem") in g.edges
    assert ("layers_0_lif_reset", "layers_0_lif_mem") in g.edges
    np.testing.assert_allclose(np.diag(g.nodes["layers_0_lif_reset"].weight), -1.0)
    np.testing.assert_allclose(g.nodes["layers_0_lif_rec"].weight, model.layers[0].neuron.recurrent.weight.detach())
    assert g.metadata["dt"] == DT


def test_nested_graph_as_snntorch_writes_recurrent_layers():
    w_rec = np.array([[0.0, 0.8], [0.8, 0.0]])
    lif = nir.LIF(tau=np.full(2, 0.01), r=np.full(2, 10.0), v_leak=np.zeros(2), v_threshold=np.ones(2),
                  v_reset=np.zeros(2))
    sub = nir.NIRGraph(nodes={"input": nir.Input(np.array([2])), "lif": lif, "w_rec": nir.Linear(w_rec),
                              "output": nir.Output(np.array([2]))},
                       edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")])
    g = nir.NIRGraph(nodes={"input": nir.Input(np.array([3])), "fc": nir.Linear(np.ones((2, 3)) * 0.4),
                            "lif1": sub, "output": nir.Output(np.array([2]))},
                     edges=[("input", "fc"), ("fc", "lif1"), ("lif1", "output")])
    x = spikes_in(T=30, B=2, n=3, p=0.5)
    out = from_nir(g, DT)(x)
    # the same network by hand: v = 0.9 v + 10 * 0.1 * (fc x + W s_prev), reset to 0
    v, s, ref = torch.zeros(2, 2), torch.zeros(2, 2), []
    for t in range(30):
        v = 0.9 * v + (x[t] @ torch.full((3, 2), 0.4) + s @ torch.tensor(w_rec, dtype=torch.float32).T)
        s = (v > 1).float()
        v = torch.where(s > 0, torch.zeros_like(v), v)
        ref.append(s)
    ref = torch.stack(ref)
    assert ref.sum() > 0 and torch.equal(out, ref)


# ----------------------------------------------------------------------------- files
def test_file_round_trip_writes_v_reset_and_dt(tmp_path):
    torch.manual_seed(0)
    model = SpikingClassifier(10, 3, hidden=(8,), reset="zero").eval()
    path = tmp_path / "m.nir"
    write_nir(model, path, DT)
    with h5py.File(path) as f:
        assert "v_reset" in f["node/nodes/layers_0_lif"]
        assert f["node/nodes/layers_0_lif/type"][()] in (b"LIF", "LIF")
    g = read_nir(path)
    x = spikes_in(n=10)
    assert torch.equal(from_nir(path)(x), from_nir(to_nir(model, DT), DT)(x))  # dt from the file's metadata
    assert g.metadata["dt"] == pytest.approx(DT)


def test_malformed_files_raise_data_error(tmp_path):
    bad = tmp_path / "bad.nir"
    bad.write_bytes(b"not hdf5 at all")
    with pytest.raises(DataError, match="not a valid NIR file"):
        from_nir(bad, DT)
    empty = tmp_path / "empty.nir"
    with h5py.File(empty, "w") as f:
        f["version"] = "1.0.8"
    with pytest.raises(DataError):
        read_nir(empty)
    with pytest.raises(DataError, match="not found"):
        read_nir(tmp_path / "missing.nir")


def test_no_partial_file_on_failure(tmp_path, monkeypatch):
    model = SpikingClassifier(10, 3, hidden=(8,)).eval()
    path = tmp_path / "m.nir"

    def broken_write(fname, graph, **kw):
        with open(fname, "wb") as fh:
            fh.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(nir, "write", broken_write)
    with pytest.raises(OSError):
        write_nir(model, path, DT)
    assert os.listdir(tmp_path) == []
    with pytest.raises(UnsupportedOptionError):
        write_nir(nn.Sequential(nn.Linear(10, 4), nn.ReLU()), path, DT)
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- errors
def _seq(*mods):
    return nn.Sequential(*mods).eval()


def test_unsupported_layers_are_named():
    with pytest.raises(UnsupportedOptionError, match=r"'1' \(ReLU\)"):
        to_nir(nn.Sequential(nn.Linear(4, 4), nn.ReLU()), DT)
    with pytest.raises(UnsupportedOptionError, match="reset_delay"):
        to_nir(_seq(nn.Linear(4, 4), snn.Synaptic(0.5, 0.5, reset_mechanism="zero", init_hidden=True)), DT)
    with pytest.raises(UnsupportedOptionError, match="reset_delay"):
        to_nir(SpikingClassifier(4, 2, hidden=(3,), recurrent=True, reset="zero"), DT)
    with pytest.raises(ShapeError, match="input_shape"):
        to_nir(_seq(nn.Conv2d(1, 2, 3)), DT)


def _delay_graph(delays):
    return nir.NIRGraph(nodes={"input": nir.Input(np.array([3])), "d": nir.Delay(np.asarray(delays, float)),
                               "output": nir.Output(np.array([3]))}, edges=[("input", "d"), ("d", "output")])


def test_delay_node_shifts_by_whole_steps():
    x = torch.arange(1.0, 7.0).view(6, 1, 1).expand(6, 2, 3).contiguous()
    y = from_nir(_delay_graph([0.0, DT, 3 * DT]), DT)(x)
    assert torch.equal(y[:, 1, 0], x[:, 1, 0])
    assert torch.equal(y[:, 1, 1], torch.tensor([0.0, 1, 2, 3, 4, 5]))
    assert torch.equal(y[:, 1, 2], torch.tensor([0.0, 0, 0, 1, 2, 3]))


def test_importer_errors():
    with pytest.raises(UnsupportedOptionError, match="Delay node 'd'.*whole"):
        from_nir(_delay_graph([0.0, 0.5 * DT, DT]), DT)

    class Mystery(nir.NIRNode):
        def __init__(self):
            self.input_type = {"input": np.array([3])}
            self.output_type = {"output": np.array([3])}

    g = nir.NIRGraph(nodes={"input": nir.Input(np.array([3])), "m": Mystery(), "output": nir.Output(np.array([3]))},
                     edges=[("input", "m"), ("m", "output")], type_check=False)
    with pytest.raises(UnsupportedOptionError, match="'m' has type Mystery"):
        from_nir(g, DT)
    g = _delay_graph([0.0, DT, DT])
    m = from_nir(to_nir(SpikingClassifier(4, 2, hidden=(3,)), DT))
    with pytest.raises(ShapeError, match=r"\(T, B, 4\)"):
        m(torch.zeros(5, 2, 7))
    with pytest.raises(InvalidInputError, match="NaN"):
        m(torch.full((5, 2, 4), float("nan")))
    with pytest.raises(UnsupportedOptionError, match="dt"):
        from_nir(nir.NIRGraph(nodes=g.nodes, edges=g.edges, metadata={}))


def test_export_model_writes_and_verifies(tmp_path):
    torch.manual_seed(0)
    model = SpikingClassifier(16, 4, hidden=(12,), reset="zero").eval()
    x, labels = spikes_in(), torch.arange(6) % 4
    rep = export_model(model, tmp_path, dt=DT, verify=True, inputs=x, labels=labels)
    assert (tmp_path / "model.nir").is_file() and rep["files"] == ["model.nir"]
    assert rep["spike_mismatches"] == 0 and rep["importer"]["max_abs_diff_output"] < 1e-5
    assert rep["accuracy_source"] == rep["accuracy_nir"]
    assert rep["node_types"]["LIF"] == 1 and rep["cycles"] is False
    for mode in ("mean", "max"):  # accuracies pool the readout as the model does
        model.readout_mode = mode
        (tmp_path / mode).mkdir()
        rep = export_model(model, tmp_path / mode, dt=DT, verify=True, inputs=x, labels=labels)
        with torch.no_grad():
            expect = float((model(x).argmax(-1) == labels).double().mean())
        assert rep["accuracy_source"] == rep["accuracy_nir"] == expect


def test_cli_export_nir_end_to_end(tmp_path):
    import json

    import yaml

    from neuroadapt.cli import main
    from neuroadapt.engine.run import train

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "tiny", "dataset": {"name": "digits", "n_steps": 6, "max_train": 32, "max_test": 12},
        "model": {"hidden": [8], "recurrent": True},
        "training": {"epochs": 1, "batch_size": 16, "eval_batch_size": 12, "threads": 1, "plots": False,
                     "progress": False}}))
    run = tmp_path / "run"
    train(str(recipe), out=str(run), echo=False)
    assert main(["export", str(run), "--to", "nir", "--verify"]) == 0
    rep = json.loads((run / "export-nir" / "metrics.json").read_text())
    assert rep["spike_mismatches"] == 0 and rep["importer"]["spikes_source"] > 0 and rep["cycles"] is True
    assert rep["accuracy_source"] == rep["accuracy_nir"]
    assert rep["norse"]["status"] == "not importable"  # subtract reset: LI + Threshold
    assert from_nir(run / "export-nir" / "model.nir")(torch.zeros(6, 1, 64)).shape == (6, 1, 10)
