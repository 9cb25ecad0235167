"""Loihi export against Lava itself (marked ``toolchain``, part of the default suite): lava-dl's netx
reader loads our files and Lava's bit-accurate CPU models (``Loihi2SimCfg(select_tag="fixed_pt")``)
must spike exactly as the emulator does.  Needs the side environment ``python hardware/lava_env.py``
builds (cached outside the repository); when it is missing the first test builds it (several
minutes, ~3 GB), and a failed build fails these tests: a broken Lava path turns CI red, it is
never skipped.  ``python -m pytest -m "not slow and not toolchain"`` leaves them out.
"""
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

from neuroadapt.engine.exporting import export_run
from neuroadapt.export.loihi import compare_with_lava, emulate, quantise_model, write_netx
from neuroadapt.export.loihi import lava as lava_glue

from test_export_loihi import TINY, _model, _random_net  # noqa: F401  (shared fixtures of the default suite)

pytestmark = pytest.mark.toolchain


@pytest.fixture(scope="module", autouse=True)
def _lava():
    if not lava_glue.available():
        builder = lava_glue.hardware_dir() / "lava_env.py"
        try:
            res = subprocess.run([sys.executable, str(builder)], capture_output=True, text=True, timeout=3600)
        except subprocess.TimeoutExpired:
            pytest.fail(f"building Lava's side environment with `{lava_glue.create_command()}` took over an hour")
        if res.returncode != 0 or not lava_glue.available():
            tail = "\n".join((res.stderr or res.stdout).strip().splitlines()[-15:])
            pytest.fail(f"Lava's side environment is missing and building it with `{lava_glue.create_command()}` "
                        f"failed (exit {res.returncode}):\n{tail}")


@pytest.mark.parametrize("seed", [0, 1])
def test_random_networks_are_bit_exact_in_lava(tmp_path, seed):
    rng = np.random.default_rng(seed)
    net = _random_net(rng, n_in=30, sizes=(16, 8, 6))
    path = write_netx(net, tmp_path / "n.net")
    x = rng.random((12, 5, 30)) < 0.4
    rep = compare_with_lava(net, path, x)
    assert rep["spike_mismatches"] == 0 and rep["voltage_mismatches"] == 0
    assert sum(int(s.sum()) for s in emulate(net, x).spikes) > 50


def test_overflow_paths_and_graded_inputs_are_bit_exact_in_lava(tmp_path):
    rng = np.random.default_rng(7)
    net = _random_net(rng, n_in=600, sizes=(10,), big=True)     # 600 * 254 << 6 > 2**23: u wraps
    net.layers[0].i_decay, net.layers[0].v_decay, net.layers[0].v_th_mant = 200, 100, 2 ** 17 - 1
    path = write_netx(net, tmp_path / "big.net")
    x = rng.random((10, 2, 600)) < 0.97
    res = emulate(net, x, record_v=True)
    assert res.v[0].min() == -(2 ** 23 - 1) or res.v[0].max() == 2 ** 23 - 1   # the clip is reached
    assert compare_with_lava(net, path, x)["spike_mismatches"] == 0
    net2 = _random_net(np.random.default_rng(8), n_in=20, sizes=(12, 6))
    path2 = write_netx(net2, tmp_path / "graded.net")
    counts = np.random.default_rng(9).poisson(0.7, (10, 3, 20))
    assert counts.max() > 1
    rep = compare_with_lava(net2, path2, counts)
    assert rep["spike_mismatches"] == 0 and rep["voltage_mismatches"] == 0


def test_a_changed_weight_is_caught(tmp_path):
    """Negative control: the comparison can fail."""
    net = quantise_model(_model(seed=3))
    path = write_netx(net, tmp_path / "n.net")
    x = np.random.default_rng(0).random((15, 4, 10)) < 0.5
    assert compare_with_lava(net, path, x)["spike_mismatches"] == 0
    with h5py.File(path, "a") as f:
        w = f["layer/1/weight"][()]
        w[:, :] = np.clip(w + 40, -256, 254) // 2 * 2
        f["layer/1/weight"][...] = w
    rep = compare_with_lava(net, path, x)
    assert rep["spike_mismatches"] > 0


def test_export_verify_end_to_end(tmp_path):
    import yaml

    (tmp_path / "r.yaml").write_text(yaml.safe_dump(TINY))
    from neuroadapt.engine.run import train

    torch.manual_seed(0)
    train(tmp_path / "r.yaml", out=tmp_path / "run", echo=False)
    rep = export_run(tmp_path / "run", "loihi", out=tmp_path / "x", verify=True, echo=False)
    assert rep["spike_mismatches"] == 0 and rep["voltage_mismatches"] == 0
    assert rep["lava_samples"] == 12 and rep["verify_samples"] == 12
    assert 0 <= rep["fixed_accuracy"] <= 1 and "accuracy_drop_points" in rep


def test_bench_quick_is_bit_identical():
    from neuroadapt.engine import bench

    res = bench.run_benchmark("loihi-emulator", quick=True)
    assert res["config"]["spikes_identical"] is True and res["config"]["spike_mismatches"] == 0
    assert set(res["results_ms"]) == {"neuroadapt", "neuroadapt_per_sample", "lava"}
