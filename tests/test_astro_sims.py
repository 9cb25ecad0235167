"""The astrocyte sims run through ``neuroadapt sim NAME`` and write their figure and JSON."""
from __future__ import annotations

import json

import pytest

from neuroadapt.cli import main as cli_main

pytest.importorskip("brian2")


def _run(name, tmp_path, *extra):
    """Through the CLI with its defaults; with extra options, the script's own main (the CLI passes --out only)."""
    if extra:
        import importlib.util

        from neuroadapt._paths import project_folder

        spec = importlib.util.spec_from_file_location(f"sims_{name}", project_folder("sims") / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        rc = module.main(["--out", str(tmp_path), *extra])
    else:
        rc = cli_main(["sim", name, "--out", str(tmp_path)])
    data = json.loads((tmp_path / f"{name}.json").read_text())
    assert (tmp_path / f"{name}.png").stat().st_size > 10_000
    return rc, data


def test_sims_are_listed(capsys):
    assert cli_main(["sim"]) == 0
    listed = capsys.readouterr().out.split()
    assert {"astro_gchi", "astro_tripartite", "astro_network"} <= set(listed)


@pytest.mark.slow   # the same comparison runs by default in test_astrocyte.py
def test_gchi_sim_torch_matches_brian2(tmp_path):
    rc, data = _run("astro_gchi", tmp_path, "--duration", "1")
    assert rc == 0 and data["match"]
    assert max(data["torch_vs_brian2_rel_error"].values()) <= 0.01
    assert sum(r["ca_peaks"] for r in data["per_rate"]) >= 1


def test_network_sim_runs(tmp_path):
    rc, data = _run("astro_network", tmp_path, "--duration", "0.6")
    assert rc == 0
    s = data["summary"]
    assert sum(s["none"]["rates_hz_per_quarter"]["exc"]) > 0
    assert s["none"]["gamma_s_final"] == 0.0


@pytest.mark.slow
def test_tripartite_sim_reproduces_published_behaviour(tmp_path):
    rc, data = _run("astro_tripartite", tmp_path)
    assert rc == 0
    assert data["reproduces_published_behaviour"], data["checks"]


@pytest.mark.slow
def test_gchi_sim_oscillates_at_low_rates_only(tmp_path):
    rc, data = _run("astro_gchi", tmp_path)
    peaks = {r["rate_hz"]: r["ca_peaks"] for r in data["per_rate"]}
    assert rc == 0 and peaks[0.5] >= 2 and peaks[10.0] <= 1
