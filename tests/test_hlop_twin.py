"""HLOP's lateral circuit against its Brian2 twin and NumPy's SVD (principal angles)."""
import numpy as np
import pytest
import torch

from neuroadapt.learn.hlop import LateralSubspace, principal_angles

pytest.importorskip("brian2")

ANGLE_DEG = 5.0     # issue target: learned subspace within 5 degrees of the SVD subspace
H_ATOL = 1e-12      # float64 on both sides, same operations per step


def _data(n=10, k=3, S=800, seed=0):
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(n, k)))[0].T
    return (rng.normal(size=(S, k)) * [2.0, 1.5, 1.0][:k]) @ basis + 0.05 * rng.normal(size=(S, n))


def test_brian2_twin_converges_to_svd_subspace_and_torch_agrees():
    from neuroadapt.reference.hlop_brian2 import oja_brian2

    X = _data()
    sub = LateralSubspace("t", X.shape[1], lr=0.02, momentum=0.0, iterations=1, clamp=None, dtype=torch.float64)
    sub.add(3, torch.Generator().manual_seed(0))
    H0 = sub.H.numpy().copy()
    Hb, _ = oja_brian2(X, H0, 0.02)
    for s in X:                                   # batch size 1: one Oja step per sample, as the twin
        sub.hebbian(torch.from_numpy(s[None]))
    _, _, vt = np.linalg.svd(X, full_matrices=False)
    assert principal_angles(Hb, vt[:3]).max() < ANGLE_DEG
    assert principal_angles(H0, vt[:3]).max() > 30   # it did have to learn
    assert np.abs(Hb - sub.H.numpy()).max() < H_ATOL


def test_twin_rejects_mismatched_shapes():
    from neuroadapt.errors import ShapeError
    from neuroadapt.reference.hlop_brian2 import oja_brian2

    with pytest.raises(ShapeError):
        oja_brian2(np.zeros((5, 4)), np.zeros((2, 3)), 0.1)


def test_sim_two_tasks_frozen_block(tmp_path):
    """sims/hlop_subspace.py: second task with the first block frozen, Brian2 and torch alike."""
    import importlib.util
    import json

    from neuroadapt._paths import project_folder

    spec = importlib.util.spec_from_file_location("hlop_subspace", project_folder("sims") / "hlop_subspace.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--out", str(tmp_path), "--samples", "500", "--n", "10"]) == 0
    res = json.loads((tmp_path / "hlop_subspace.json").read_text())
    assert res["ok"] and len(res["phases"]) == 2
    assert res["phases"][1]["frozen"] == 3 and res["phases"][1]["angle_brian2_deg"] < ANGLE_DEG
    assert (tmp_path / "hlop_subspace.png").is_file()
