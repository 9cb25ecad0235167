"""nn.ELM against its independent twins: float64 NumPy (the paper's equations, per-synapse traces)
and a continuous-time Brian2 model (exact leaks, spikes through Synapses, MLP as network_operation).

Tolerance: 1e-10 absolute on branch traces, memory and readout (float64 on every side; observed
differences are summation-order rounding, ~1e-15)."""

import numpy as np
import pytest
import torch

from neuroadapt.errors import ShapeError
from neuroadapt.nn import ELM
from neuroadapt.reference.elm import compare_states, simulate_brian2, simulate_numpy

ATOL = 1e-10
CASES = {
    "v1": dict(version="v1"),
    "v2": dict(version="v2", lambda_value=3.0),
    "branch_random": dict(n_branches=6, synapses_per_branch=5, routing="random", mlp_layers=2, mlp_activation="silu"),
    "branch_overlap": dict(n_branches=4, synapses_per_branch=6, routing="overlap", mlp_activation="tanh"),
}



@pytest.fixture(autouse=True)
def _one_thread():
    """Small tensors: one thread is fastest, and two thrash on a busy 2-core machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)

def _setup(opts, T=60, seed=0):
    torch.manual_seed(seed)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        elm = ELM(12, 3, n_memory=5, tau_m_min=2e-3, tau_m_max=0.2, dt=1e-3, **opts)
    finally:
        torch.set_default_dtype(prev)
    with torch.no_grad():  # make the synapse weights unequal, so a routing mistake shows
        elm.w_s_raw.uniform_(0.1, 1.0)
    rng = np.random.default_rng(seed)
    spikes = (rng.random((T, 12)) < 0.2).astype(np.float64)
    spikes[3, 2] = 2.0  # a bin with two spikes
    return elm, spikes


def _torch(elm, spikes):
    x = torch.as_tensor(spikes)[:, None, :]
    with torch.no_grad():
        y, mem, _ = elm.forward_sequence(x)
        state, traces = None, []
        for t in range(x.shape[0]):
            _, state = elm(x[t], state)
            traces.append(state.trace[0].numpy().copy())
    return {"trace": np.array(traces), "memory": mem[:, 0].numpy(), "output": y[:, 0].numpy()}


@pytest.mark.parametrize("name", list(CASES))
def test_module_matches_numpy_twin(name):
    elm, spikes = _setup(CASES[name])
    ref = simulate_numpy(spikes, elm.reference_params())
    diff = compare_states(ref, _torch(elm, spikes))
    assert max(diff.values()) < ATOL, diff
    assert np.abs(ref["memory"]).max() > 0.1  # the memory actually moved


@pytest.mark.parametrize("name", ["v1", "branch_random"])
def test_module_matches_brian2_twin(name):
    elm, spikes = _setup(CASES[name], T=40)
    p = elm.reference_params()
    b2 = simulate_brian2(spikes, p)
    assert max(compare_states(b2, _torch(elm, spikes)).values()) < ATOL
    assert max(compare_states(simulate_numpy(spikes, p), b2).values()) < ATOL


@pytest.mark.slow
@pytest.mark.parametrize("name", ["v2", "branch_overlap"])
def test_module_matches_brian2_twin_longer(name):
    elm, spikes = _setup(CASES[name], T=300, seed=3)
    b2 = simulate_brian2(spikes, elm.reference_params())
    assert max(compare_states(b2, _torch(elm, spikes)).values()) < ATOL


def test_twin_detects_a_wrong_parameter():
    """The comparison can fail: a twin run with another lambda disagrees."""
    elm, spikes = _setup(CASES["v1"])
    p = elm.reference_params()
    p["lambda_value"] = 4.0
    diff = compare_states(simulate_numpy(spikes, p), _torch(elm, spikes))
    assert diff["max_abs_dmemory"] > 1e-3


def test_twin_rejects_bad_input():
    elm, spikes = _setup(CASES["v1"])
    with pytest.raises(ShapeError):
        simulate_numpy(spikes[:, :5], elm.reference_params())
    with pytest.raises(ShapeError):
        simulate_numpy(spikes[0], elm.reference_params())


def test_sim_script_writes_figure_and_json(tmp_path):
    import json

    from neuroadapt.cli import main

    assert main(["sim", "elm_twin", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "elm_twin.json").read_text())
    assert result["match"] and (tmp_path / "elm_twin.png").stat().st_size > 1000
    assert all(v["max_abs_diff"] < ATOL for v in result["neurons"].values())
