"""The torch SoftHebb rule against a Brian2 network with lateral inhibition and a NumPy twin."""
import numpy as np
import pytest
import torch

from neuroadapt.errors import InvalidInputError, ShapeError
from neuroadapt.learn.tta.hebbian import softhebb_delta
from neuroadapt.reference.softhebb_brian2 import softhebb_brian2, softhebb_numpy

TOL = 1e-12  # float64 throughout: the twins agree to round-off


def _torch_online(x, w0, eta, tau, anti=False):
    w = torch.from_numpy(w0.copy())
    for p in range(len(x)):
        w += eta * softhebb_delta(torch.from_numpy(x[p:p + 1]), w, tau, anti)
    return w.numpy()


def test_brian2_network_matches_torch_rule():
    pytest.importorskip("brian2")
    rng = np.random.default_rng(0)
    x, w0 = rng.random((40, 6)), rng.normal(size=(3, 6)) * 0.3
    wb = softhebb_brian2(x, w0, eta=0.05, tau=0.5)
    wt = _torch_online(x, w0, 0.05, 0.5)
    assert np.abs(wb - w0).max() > 0.1  # the presentations changed the weights substantially
    np.testing.assert_allclose(wb, wt, rtol=0, atol=TOL)
    # a different temperature gives different weights: the comparison can fail
    assert np.abs(softhebb_numpy(x, w0, 0.05, 2.0) - wb).max() > 1e-3


@pytest.mark.parametrize("anti", [False, True])
def test_numpy_twin_matches_torch_rule(anti):
    rng = np.random.default_rng(1)
    x, w0 = rng.normal(size=(60, 5)), rng.normal(size=(4, 5)) * 0.3
    np.testing.assert_allclose(softhebb_numpy(x, w0, 0.02, 1.0, anti), _torch_online(x, w0, 0.02, 1.0, anti),
                               rtol=0, atol=TOL)


def test_twin_bad_input():
    with pytest.raises(ShapeError):
        softhebb_numpy(np.zeros((3, 4)), np.zeros((2, 5)), 0.1)
    with pytest.raises(InvalidInputError):
        softhebb_numpy(np.zeros((3, 4)), np.zeros((2, 4)), 0.1, tau=0.0)
    with pytest.raises(InvalidInputError):
        softhebb_numpy(np.full((3, 4), np.nan), np.zeros((2, 4)), 0.1)
