"""The benchmark runner (``neuroadapt bench``) and its memory measurement.

No timing is asserted anywhere: speed is reported by the benchmarks, never tested.
"""
import io
import json
import textwrap

import pytest
import torch

from neuroadapt.engine import bench
from neuroadapt.errors import ConfigError, UnsupportedOptionError

MiB = 1024 * 1024


def _last_json(text: str) -> dict:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert lines, "nothing printed"
    return json.loads(lines[-1])


def _check_contract(result: dict, name: str, kind: str, peers) -> None:
    assert set(result) == {"bench", "config", kind, "ratios"}
    assert result["bench"] == name
    for peer in peers:
        assert result[kind][peer] > 0
    for key, value in result["ratios"].items():
        assert value > 0, key
    cfg = result["config"]
    assert cfg["threads"] == torch.get_num_threads()
    assert cfg["device"] == "cpu"


# ----------------------------------------------------------------------------- runner
def test_lists_the_repository_benchmarks():
    names = bench.list_benchmarks()
    assert {"lif", "lif-memory"} <= set(names)
    assert "common" not in names  # a helper file without run() is not a benchmark


def test_unknown_benchmark_is_rejected_with_the_available_names():
    with pytest.raises(UnsupportedOptionError) as err:
        bench.main("no-such-bench", as_json=True)
    assert "lif-memory" in str(err.value) and "lif" in str(err.value)


def test_main_without_name_lists_benchmarks():
    out = io.StringIO()
    assert bench.main(None, stream=out) == 0
    assert "lif-memory" in out.getvalue()


def test_parse_overrides():
    assert bench.parse_overrides("") == {}
    assert bench.parse_overrides("repeats=3, T=5,peers=neuroadapt,snntorch") == {
        "repeats": "3", "T": "5", "peers": "neuroadapt,snntorch"}
    assert bench.parse_overrides('{"repeats": 2}') == {"repeats": 2}
    with pytest.raises(ConfigError):
        bench.parse_overrides("repeats")
    with pytest.raises(ConfigError):
        bench.parse_overrides("{not json")


FAKE = """
def run(config_overrides):
    cfg = dict(config_overrides or {{}})
    return {{"bench": "x", "config": {{"threads": 1, "device": "cpu", "spikes_identical": {ok}, **cfg}},
            "results_ms": {{"neuroadapt": 2.0, "peer": {peer}}}, "ratios": {{"peer_over_neuroadapt": {peer} / 2.0}}}}
"""


@pytest.fixture
def fake_dir(tmp_path, monkeypatch):
    (tmp_path / "good_one.py").write_text(textwrap.dedent(FAKE.format(ok=True, peer=4.0)))
    (tmp_path / "invalid_peers.py").write_text(textwrap.dedent(FAKE.format(ok=False, peer=4.0)))
    (tmp_path / "broken_numbers.py").write_text(textwrap.dedent(FAKE.format(ok=True, peer=-1.0)))
    (tmp_path / "helpers.py").write_text("X = 1\n")
    monkeypatch.setenv(bench.ENV_DIR, str(tmp_path))
    for var in (bench.ENV_QUICK, bench.ENV_DEVICE, bench.ENV_OVERRIDES):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def test_env_folder_discovery_and_json_last_line(fake_dir, monkeypatch):
    assert bench.list_benchmarks() == ["broken-numbers", "good-one", "invalid-peers"]
    monkeypatch.setenv(bench.ENV_OVERRIDES, "repeats=3")
    out = io.StringIO()
    assert bench.main("good-one", as_json=True, quick=True, stream=out) == 0
    result = _last_json(out.getvalue())
    assert result["bench"] == "good-one"  # the runner names the result after the command
    assert result["config"]["quick"] is True and result["config"]["repeats"] == "3"
    assert result["ratios"] == {"peer_over_neuroadapt": 2.0}


def test_readable_table(fake_dir):
    out = io.StringIO()
    assert bench.main("good-one", as_json=False, stream=out) == 0
    text = out.getvalue()
    assert "neuroadapt" in text and "peer_over_neuroadapt" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[-1])


def test_failed_validity_check_exits_nonzero(fake_dir):
    out = io.StringIO()
    assert bench.main("invalid-peers", as_json=True, stream=out) == 1
    assert _last_json(out.getvalue())["config"]["spikes_identical"] is False


def test_result_with_non_positive_numbers_is_an_error(fake_dir):
    with pytest.raises(RuntimeError, match="positive"):
        bench.main("broken-numbers", as_json=True, stream=io.StringIO())


# ----------------------------------------------------------------------------- memory method
@pytest.fixture
def common():
    return bench.load_module("common", bench.benchmarks_dir())


def test_peak_from_memory_events(common):
    events = [(1, 100), (2, 50), (3, -100), (4, 30), (5, -50), (6, -30)]
    assert common.peak_from_memory_events(events) == 150
    assert common.peak_from_memory_events(list(reversed(events))) == 150  # ordered by time
    assert common.peak_from_memory_events([(1, -10), (2, 5)]) == 0  # never below the start level


def test_cpu_peak_matches_known_allocations(common):
    keep = torch.ones(3 * MiB, dtype=torch.uint8)  # exists before the region: not counted

    def region():
        a = torch.empty(8 * MiB, dtype=torch.uint8)
        b = torch.empty(4 * MiB, dtype=torch.uint8)
        del a
        c = torch.empty(2 * MiB, dtype=torch.uint8)
        del b, c

    assert common.cpu_peak_bytes(region) == 12 * MiB
    assert keep.numel() == 3 * MiB


def test_cpu_peak_of_a_linear_forward_backward(common):
    """Linear(in->out) on (N, in), loss sum(y * w), counted by hand: forward holds y and y*w
    (2 S); backward holds dL/dy (S) plus the weight and bias gradients (G) plus the loss
    scalar and its unit gradient (8 bytes).  Sizes chosen so that S + G > 2 S."""
    n, n_in, n_out = 1024, 2048, 256
    fc = torch.nn.Linear(n_in, n_out)
    x, w = torch.rand(n, n_in), torch.rand(n, n_out)

    def region():
        (fc(x) * w).sum().backward()

    fc(x).sum().backward()  # first call: lazy initialisation outside the measurement
    fc.zero_grad(set_to_none=True)
    s_bytes, g_bytes = n * n_out * 4, (n_in * n_out + n_out) * 4
    assert abs(common.cpu_peak_bytes(region) - (s_bytes + g_bytes)) <= 64


def test_saved_tensor_bytes(common):
    x = torch.rand(1000, requires_grad=True)

    def region():
        y = x * 2.0
        (y.exp()).sum().backward()  # exp saves its 4000-byte output; x * 2 saves nothing

    assert common.saved_tensor_bytes(region, exclude=[x]) == 4000


# ----------------------------------------------------------------------------- the benchmarks
def test_lif_quick_run(capfd):
    rc = bench.main("lif", as_json=True, quick=True, overrides={"T": 8, "repeats": 2, "warmup": 1})
    stdout = capfd.readouterr().out
    result = _last_json(stdout)
    _check_contract(result, "lif", "results_ms", ["neuroadapt", "snntorch", "norse", "norse_box", "floor"])
    assert set(result["ratios"]) >= {"snntorch_over_neuroadapt", "norse_over_neuroadapt", "neuroadapt_over_floor"}
    cfg = result["config"]
    assert cfg["T"] == 8 and cfg["B"] == 32 and cfg["in_features"] == 700 and cfg["out_features"] == 256
    assert cfg["spikes_identical"] is True, "neuroadapt and snnTorch spikes differ on the same input"
    assert 0 < cfg["output_spike_rate"] < 1
    assert rc == 0


def test_lif_memory_quick_run(capfd):
    rc = bench.main("lif-memory", as_json=True, quick=True)
    result = _last_json(capfd.readouterr().out)
    _check_contract(result, "lif-memory", "results_mb", ["neuroadapt", "snntorch", "norse", "floor"])
    assert "neuroadapt_over_snntorch" in result["ratios"]
    assert "profiler" in result["config"]["method"]
    assert result["config"]["spikes_identical"] is True
    assert rc == 0


def test_benchmark_rejects_unknown_options_and_devices():
    with pytest.raises(UnsupportedOptionError, match="repeats"):
        bench.run_benchmark("lif", quick=True, overrides={"repetitions": 2})
    with pytest.raises(UnsupportedOptionError):
        bench.run_benchmark("lif", quick=True, overrides={"peers": "snntorch,floor"})
    if not torch.cuda.is_available():
        with pytest.raises(UnsupportedOptionError, match="cuda"):
            bench.run_benchmark("lif", quick=True, device="cuda")
