"""AM-SU layer (neuroadapt.nn.AMSU), its recipes and tasks.

Limiting cases checked against code we did not write for this layer:
* ``astrocyte="gchi"`` *is* the biophysical tripartite synapse + G-ChI astrocyte: its release
  variables and astrocyte Ca2+ equal :func:`neuroadapt.core.astrocyte.tripartite_scan` (itself held
  to Brian2 in test_astrocyte.py) on the same spikes;
* ``astrocyte="none"`` with instantaneous recovery (τ_d -> 0) and no facilitation memory (τ_f -> 0)
  is a recurrent LIF layer: same spikes and membrane as ``neuroadapt.nn.LIFLayer`` (snnTorch RLeaky).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from neuroadapt.core.astro_params import AstroParams
from neuroadapt.core.astrocyte import tripartite_scan
from neuroadapt.errors import InvalidInputError, ShapeError, UnsupportedOptionError
from neuroadapt.nn import AMSU, LIFLayer


def _spikes(T, B, n, p, seed=0):
    return (torch.rand(T, B, n, generator=torch.Generator().manual_seed(seed)) < p).double()


def test_gchi_mode_is_the_biophysical_model():
    n, T = 4, 800
    params = AstroParams().replace(O_beta=10.0, O_delta=1.2)   # faster IP3 rise: Ca crosses C_Θ by ~0.72 s
    rates = torch.tensor([2.0, 10.0, 40.0, 5.0], dtype=torch.float64)
    s = (torch.rand(T, 2, n, generator=torch.Generator().manual_seed(3), dtype=torch.float64) < rates * 1e-3).double()
    layer = AMSU(n, 3, n_astro=n, astrocyte="gchi", dt=1e-3, syn_to_astro=np.eye(n), params=params).double()
    _, _, rec, _ = layer(s, return_state=True)
    ref, _ = tripartite_scan(s, np.eye(n), np.eye(n), dt=1e-3, params=params)
    assert ref["C"].max() > 0.5 and ref["Gamma_S"].max() > 0.5          # the astrocytes did act
    torch.testing.assert_close(rec["gamma"], ref["Gamma_S"], rtol=0, atol=1e-12)
    torch.testing.assert_close(rec["ca"], ref["C"], rtol=0, atol=1e-12)
    m = s > 0
    torch.testing.assert_close(rec["r"][m], ref["r_S"][m], rtol=0, atol=1e-12)
    assert (rec["r"][~m] == 0).all()


def test_no_astrocyte_fast_recovery_is_a_recurrent_lif_layer():
    torch.manual_seed(0)
    n_in, n_out, T = 12, 6, 80
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)        # parameters (U* as a logit) created in float64
    try:
        amsu = AMSU(n_in, n_out, astrocyte="none", recurrent=True, dt=1e-3, tau_f=1e-6, tau_d=1e-6, beta=0.8,
                    threshold=1.0)
        lif = LIFLayer(n_in, n_out, recurrent=True, beta=0.8, threshold=1.0)
    finally:
        torch.set_default_dtype(prev)
    with torch.no_grad():
        lif.fc.weight.copy_(amsu.fc.weight * 3.0)
        lif.fc.bias.copy_(amsu.fc.bias * 3.0)
        amsu.fc.weight.mul_(3.0)
        amsu.fc.bias.mul_(3.0)
        lif.neuron.recurrent.weight.copy_(amsu.rec.weight)
        if getattr(lif.neuron.recurrent, "bias", None) is not None:
            lif.neuron.recurrent.bias.zero_()
    x = _spikes(T, 3, n_in, 0.2)
    s1, m1 = amsu(x, return_mem=True)
    s2, m2 = lif(x, return_mem=True)
    assert s2.sum() > 10
    torch.testing.assert_close(m1, m2, rtol=0, atol=1e-9)
    assert torch.equal(s1, s2)


def test_step_call_equals_sequence_call_and_batch_first():
    torch.manual_seed(1)
    layer = AMSU(10, 5, n_astro=3, excitability=True, recurrent=True, dt=0.01).double()
    x = _spikes(30, 2, 10, 0.3)
    seq, mem = layer(x, return_mem=True)
    state, outs = None, []
    for t in range(30):
        spk, state = layer(x[t], state)
        outs.append(spk)
    torch.testing.assert_close(torch.stack(outs), seq)
    layer.batch_first = True
    torch.testing.assert_close(layer(x.transpose(0, 1)), seq.transpose(0, 1))


def test_astrocyte_modulates_release_and_gradients_reach_every_parameter():
    torch.manual_seed(2)
    layer = AMSU(16, 8, n_astro=4, g_in=5.0, g_gamma=0.9, excitability=True, dt=0.01)
    x = (torch.rand(200, 4, 16) < 0.05).float()
    spk, mem, rec, _ = layer(x, return_state=True)
    assert rec["gamma"][-1].mean() > 0.3 and rec["ca"][-1].mean() > 0.3
    no_astro = AMSU(16, 8, n_astro=4, astrocyte="none", dt=0.01)
    _, _, rec0, _ = no_astro(x, return_state=True)
    assert rec["r"][-20:].sum() < 0.9 * rec0["r"][-20:].sum()            # release-decreasing (α = 0)
    (mem.mean() + spk.mean()).backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert layer.log_tau_p.grad.abs() > 0 and layer.g_gamma_logit.grad.abs() > 0


@pytest.mark.parametrize("kwargs,err", [
    (dict(astrocyte="nope"), UnsupportedOptionError), (dict(tau_d=-0.1), InvalidInputError),
    (dict(tau_p=0.0), InvalidInputError), (dict(dt=0.0), InvalidInputError), (dict(u_star=1.2), InvalidInputError),
    (dict(g_gamma=1.0), InvalidInputError), (dict(beta=1.5), InvalidInputError),
    (dict(astrocyte="gchi", dt=0.02), InvalidInputError),
    (dict(astrocyte="none", excitability=True), UnsupportedOptionError)])
def test_bad_arguments_are_refused(kwargs, err):
    with pytest.raises(err):
        AMSU(4, 3, **kwargs)


def test_bad_shapes_are_refused():
    layer = AMSU(4, 3)
    with pytest.raises(ShapeError):
        layer(torch.zeros(5, 2, 7))
    with pytest.raises(ShapeError):
        layer(torch.zeros(4))


def test_export_is_refused_clearly():
    from neuroadapt.engine.exporting import unsupported_reason
    from neuroadapt.engine.models_astro import AstroClassifier

    for cell in ("amsu", "lif", "lstm"):
        reason = unsupported_reason(AstroClassifier(4, 2, cell=cell, hidden=3))
        assert reason and "not exported" in reason
    assert "Tsodyks-Markram" in unsupported_reason(torch.nn.Sequential(AMSU(4, 3)))


@pytest.mark.parametrize("task", ["delayed_recall", "char_lm", "spoken_digits_adding"])
def test_recipes_build_with_matched_parameter_counts(task):
    from neuroadapt.engine.config import load_recipe
    from neuroadapt.engine.models import build_model
    from neuroadapt.engine.models_astro import n_params

    dims = {"delayed_recall": (44, 8), "char_lm": (96, 96), "spoken_digits_adding": (700, 19)}[task]
    counts = {}
    for cell in ("amsu", "lif", "lstm"):
        recipe = load_recipe(f"{task}_{cell}")
        counts[cell] = n_params(build_model(recipe["model"], *dims))
    assert max(counts.values()) / min(counts.values()) < 1.05, counts


def test_delayed_recall_data():
    from neuroadapt.data.astro_tasks import DelayedRecall

    d = DelayedRecall(delay_steps=10, n_test=20)
    x, y = d.batch("test", torch.arange(20))
    x2, y2 = d.batch("test", torch.arange(5, 10))
    assert x.shape == (20, 20, 44) and torch.equal(x[:, 5:10], x2) and torch.equal(y[5:10], y2)
    assert (x[-5:, :, 40:] == 1).all() and x[5:15, :, 40:].mean() < 0.1      # go channels: noise only before
    cue = x[:5, :, :40].sum(0)                                  # the cue identifies the class
    pat = d.patterns[y]
    assert ((cue > 0).float() * pat).sum() > 0.6 * (pat.sum() * 1.0)


def test_char_lm_reads_the_stdlib_and_labels_the_next_character():
    from neuroadapt.data.astro_tasks import VOCAB, CharLM

    d = CharLM(context=8, max_chars=20_000, n_train=16, n_test=16)
    x, y = d.batch("test", torch.arange(16))
    assert x.shape == (8, 16, len(VOCAB)) and (x.sum(2) == 1).all()
    codes = x.argmax(2)                                         # (T, B)
    starts = d._test_starts
    assert torch.equal(codes[:, 0], d.codes[starts[0]:starts[0] + 8]) and y[0] == d.codes[starts[0] + 8]
    text = "".join(VOCAB[int(c)] for c in d.codes[:200])
    assert "import" in text or "def " in text or '"""' in text
    assert math.isclose(d.n_classes, 96)


def test_every_astro_recipe_loads():
    from neuroadapt.engine.config import load_recipe, models_dir

    names = [p.stem for p in sorted(models_dir().glob("*.yaml"))
             if p.stem.startswith(("delayed_recall", "char_lm", "spoken_digits_adding_amsu",
                                   "spoken_digits_adding_lif", "spoken_digits_adding_lstm"))]
    assert len(names) >= 14
    for name in names:
        assert load_recipe(name)["model"]["type"] == "astro_classifier", name
