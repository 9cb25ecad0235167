"""NIR interoperability: our graphs in Norse's and snnTorch's importers, Norse-written graphs in ours
(implementations we did not write), and the ``bench nir`` parity benchmark."""
import logging
import warnings

import nir
import numpy as np
import pytest
import snntorch as snn
import torch
from torch import nn

from neuroadapt.engine.models import SpikingClassifier
from neuroadapt.errors import InvalidInputError, UnsupportedOptionError
from neuroadapt.export.nir import from_nir, run_norse, to_nir
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



# ----------------------------------------------------------------------------- NIR -> Norse
def _seq(*mods):
    return nn.Sequential(*mods).eval()


NORSE_CASES = {
    "LIF": lambda: _seq(nn.Linear(16, 30), snn.Leaky(0.85, threshold=0.7, reset_mechanism="zero", init_hidden=True),
                        nn.Linear(30, 10), snn.Leaky(0.9, threshold=0.5, reset_mechanism="zero", init_hidden=True)),
    "CubaLIF": lambda: _seq(nn.Linear(16, 30), snn.Synaptic(0.7, 0.85, reset_mechanism="zero", reset_delay=False,
                                                             init_hidden=True),
                            nn.Linear(30, 10), snn.Synaptic(0.6, 0.9, threshold=0.5, reset_mechanism="zero",
                                                             reset_delay=False, init_hidden=True)),
    "recurrent LIF": lambda: _seq(nn.Linear(16, 30), snn.RLeaky(0.85, linear_features=30, reset_mechanism="zero",
                                                                 reset_delay=False, init_hidden=True),
                                  nn.Linear(30, 10), snn.Leaky(0.9, threshold=0.5, reset_mechanism="zero", init_hidden=True)),
    "LIF per-neuron beta and threshold": lambda: _seq(
        nn.Linear(16, 30), snn.Leaky(torch.linspace(0.3, 0.95, 30), threshold=torch.linspace(0.3, 1.2, 30),
                                     reset_mechanism="zero", init_hidden=True)),
    "IF": lambda: _seq(nn.Linear(16, 20), snn.Leaky(1.0, threshold=2.0, reset_mechanism="zero", init_hidden=True)),
    "conv": lambda: _seq(nn.Conv2d(2, 4, 3, padding=1), snn.Leaky(0.9, threshold=0.5, reset_mechanism="zero", init_hidden=True),
                         nn.Conv2d(4, 4, 3, stride=2), snn.Leaky(0.8, threshold=0.5, reset_mechanism="zero", init_hidden=True)),
}


@pytest.mark.parametrize("name", list(NORSE_CASES))
def test_neuroadapt_to_nir_to_norse_gives_identical_spikes(name):
    torch.manual_seed(1)
    model = NORSE_CASES[name]()
    shape = (2, 10, 10) if name == "conv" else (16,)
    x = spikes_in(T=40, B=4, shape=shape, p=0.4)
    graph, info = to_nir(model, DT, input_shape=shape, return_info=True)
    rep = verify_graph(model, graph, info, x, DT)
    assert rep["norse"]["status"] == "ok", rep["norse"]
    for key in ("importer", "norse"):
        r = rep[key] if key == "importer" else rep["norse"]
        assert r["spike_mismatches"] == 0, (key, r)
        assert all(layer["spikes_source"] > 0 for layer in r["layers"].values()), r
    assert rep["spike_mismatches"] == 0
    if name == "recurrent LIF":
        assert ("1", "1_rec") in graph.edges and ("1_rec", "1") in graph.edges  # the cycle


@pytest.mark.parametrize("conv1d", [False, True])
def test_pooling_flatten_and_conv1d_round_trip(conv1d):
    torch.manual_seed(3)
    if conv1d:
        model = _seq(nn.Conv1d(3, 6, 3, padding=1, stride=1), snn.Leaky(0.9, threshold=0.5, init_hidden=True),
                     nn.Flatten(), nn.Linear(6 * 12, 5), snn.Synaptic(0.5, 0.8, threshold=0.4, init_hidden=True))
        shape = (3, 12)
    else:
        model = _seq(nn.Conv2d(2, 4, 3, padding=1), snn.Leaky(0.9, threshold=0.5, reset_mechanism="zero", init_hidden=True),
                     nn.AvgPool2d(2), nn.Flatten(), nn.Linear(4 * 25, 6),
                     snn.Leaky(0.8, threshold=0.3, reset_mechanism="zero", init_hidden=True))
        shape = (2, 10, 10)
    graph, info = to_nir(model, DT, input_shape=shape, return_info=True)
    flat = next(n for n in graph.nodes.values() if isinstance(n, nir.Flatten))
    assert flat.start_dim == 0  # NIR dims exclude the batch (torch's start_dim=1)
    rep = verify_graph(model, graph, info, spikes_in(T=30, B=3, shape=shape, p=0.4), DT)
    assert rep["importer"]["spike_mismatches"] == 0
    assert all(v["spikes_source"] > 0 for v in rep["importer"]["layers"].values())


def test_norse_gets_lif_weights_with_unit_r_and_we_read_both_forms():
    torch.manual_seed(0)
    model = NORSE_CASES["LIF"]()
    folded, unfolded = to_nir(model, DT), to_nir(model, DT, fold_r=False)
    np.testing.assert_array_equal(folded.nodes["1"].r, 1.0)  # Norse ignores R on LIF
    np.testing.assert_allclose(unfolded.nodes["1"].r, 1 / (1 - 0.85), rtol=1e-6)  # snnTorch's form: R = tau/dt
    x = spikes_in()
    a, b = from_nir(folded, DT)(x), from_nir(unfolded, DT)(x)
    assert torch.equal(a, b) and a.sum() > 0


def test_classifier_hidden_layers_match_norse_where_norse_can_import():
    torch.manual_seed(0)
    model = SpikingClassifier(16, 5, hidden=(24, 12), threshold=0.5, reset="zero").eval()
    graph, info = to_nir(model, DT, return_info=True)
    rep = verify_graph(model, graph, info, spikes_in(), DT)
    assert rep["norse"]["status"] == "partial" and "LI" in rep["norse"]["reason"]
    assert rep["norse"]["compared_layers"] == ["layers_0_lif", "layers_1_lif"]
    assert rep["norse"]["spike_mismatches"] == 0 and rep["norse"]["spikes_source"] > 50


def test_subtract_reset_graph_is_reported_as_not_norse_importable():
    model = SpikingClassifier(8, 3, hidden=(6,), reset="subtract").eval()
    graph, info = to_nir(model, DT, return_info=True)
    rep = verify_graph(model, graph, info, spikes_in(n=8), DT)
    assert rep["norse"]["status"] == "not importable"
    assert "LI" in rep["norse"]["reason"] and "Threshold" in rep["norse"]["reason"]
    with pytest.raises(UnsupportedOptionError, match="Threshold"):
        run_norse(graph, spikes_in(n=8), DT)


# ----------------------------------------------------------------------------- Norse -> NIR -> neuroadapt
def test_graph_exported_by_norse_matches_norses_own_run():
    import norse.torch as nt

    torch.manual_seed(2)
    layers = [nn.Linear(16, 30), nt.LIFBoxCell(nt.LIFBoxParameters(tau_mem_inv=torch.tensor(50.0),
                                                                   v_th=torch.tensor(0.5))),
              nn.Linear(30, 10), nt.LIFBoxCell(nt.LIFBoxParameters(v_th=torch.tensor(0.3))),
              nn.Linear(10, 4), nt.LIBoxCell()]
    with torch.no_grad():  # strong enough weights that both layers spike through the dt/tau input scaling
        layers[0].weight.mul_(20)
        layers[2].weight.mul_(20)
    net = nt.SequentialState(*layers)
    x = spikes_in(T=60, B=5, p=0.4) * 3
    # Norse's own run, layer by layer
    states, rec = [None] * 6, {str(i): [] for i in range(6)}
    with torch.no_grad():
        for t in range(x.shape[0]):
            h = x[t]
            for i, layer in enumerate(layers):
                if i % 2:
                    h, states[i] = layer(h, states[i])
                else:
                    h = layer(h)
                rec[str(i)].append(h)
    ref = {k: torch.stack(v) for k, v in rec.items()}
    # Norse 1.1's to_nir writes tau = dt / tau_mem_inv; dt=1.0 gives tau in seconds
    graph = nt.to_nir(net, torch.zeros(1, 16), dt=1.0)
    assert {type(n).__name__ for n in graph.nodes.values()} >= {"LIF", "LI", "Affine"}
    out, ours = from_nir(graph, DT)(x, record=True)
    for k in ("1", "3"):
        assert ref[k].sum() > 0
        assert torch.equal(ours[k], ref[k]), k
    assert (out - ref["5"]).abs().max() < 1e-5
    # with Norse's default dt the time constants are 1000x too short: refused, not silently wrong
    with pytest.raises(InvalidInputError, match="to_nir"):
        from_nir(nt.to_nir(net, torch.zeros(1, 16)), DT)


def test_norse_cubalif_graph_runs_as_norses_own_importer_runs_it():
    """Norse's LIFCell export (CubaLIF, w_in = r = 1) does not carry LIFCell's own update (its input
    jumps the current after the voltage step), so Norse's own re-import differs from its LIFCell run;
    our importer must agree with Norse's importer on the graph."""
    import norse.torch as nt

    torch.manual_seed(0)
    lin = nn.Linear(10, 8)
    with torch.no_grad():
        lin.weight.mul_(20)
    net = nt.SequentialState(lin, nt.LIFCell(nt.LIFParameters(tau_mem_inv=torch.tensor(100.0),
                                                              tau_syn_inv=torch.tensor(200.0), v_th=torch.tensor(0.3))))
    graph = nt.to_nir(net, torch.zeros(1, 10), dt=1.0)
    assert isinstance(graph.nodes["1"], nir.CubaLIF)
    x = spikes_in(T=100, B=4, n=10)
    norse_out, _ = run_norse(graph, x, DT)
    ours = from_nir(graph, DT)(x)
    assert norse_out.sum() > 50 and torch.equal(ours, norse_out)


def test_snntorch_importer_reads_our_graph(capfd):
    """snnTorch's import_from_nir (hard-coded dt = 1e-4) runs our LIF graph spike for spike when
    the graph is written with dt = 1e-4 (only dt/tau is portable; beta is unchanged)."""
    from snntorch.import_nir import import_from_nir

    torch.manual_seed(0)
    model = NORSE_CASES["LIF"]()
    x = spikes_in(T=40, B=4, p=0.4)
    graph = to_nir(model, 1e-4, fold_r=False)
    net = import_from_nir(graph)
    state, outs = None, []
    with torch.no_grad():
        for t in range(x.shape[0]):
            o, state = net(x[t], state)
            outs.append(o)
    theirs = torch.stack(outs)
    ours = from_nir(graph, 1e-4)(x)
    assert theirs.sum() > 20 and torch.equal(theirs, ours)
    assert torch.equal(ours, from_nir(to_nir(model, DT), DT)(x))  # the same spikes at any dt


def test_nir_benchmark_quick_run(capfd):
    import json

    from neuroadapt.engine import bench

    rc = bench.main("nir", as_json=True, quick=True, overrides={"in_features": 40, "hidden": 32})
    result = json.loads(capfd.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and result["bench"] == "nir" and set(result["results_ms"]) == {"neuroadapt", "norse"}
    parity = result["config"]["parity"]
    assert set(parity) == {"LIF", "CubaLIF", "recurrent LIF", "conv LIF"}
    assert all(p["norse_status"] == "ok" and p["spikes_source"] > 0 for p in parity.values())
    assert result["config"]["spikes_identical"] is True
