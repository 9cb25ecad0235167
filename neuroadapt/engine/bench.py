"""Runner of ``neuroadapt bench NAME [--json]``: finds, runs and reports the benchmarks.

Benchmarks live in the top-level ``benchmarks/`` folder of the repository (next to the
``neuroadapt`` package; ``$NEUROADAPT_BENCHMARKS`` points elsewhere).  A benchmark is a file
there with a top-level ``def run(config_overrides) -> dict``; its name is the file stem with
``_`` written ``-`` (``lif_memory.py`` is ``lif-memory``).  The folder is loaded as the package
``neuroadapt_benchmarks`` so that benchmarks share ``common.py`` by relative import.

``run`` returns ``{"bench": NAME, "config": {...}, "results_ms" | "results_mb": {peer: value},
"ratios": {...}}``.  With ``as_json`` the last line printed is exactly that object as JSON.

Overrides (all optional): ``quick=True`` (the benchmark's small settings, for tests),
``device="cuda"``, ``overrides={"repeats": 5, ...}``; or from the environment:
``NEUROADAPT_BENCH_QUICK=1``, ``NEUROADAPT_BENCH_DEVICE=cuda``,
``NEUROADAPT_BENCH_OVERRIDES="repeats=5,T=50"`` (or a JSON object).  Explicit arguments win.

Exit code: 0; 1 when the benchmark ran but its own validity check failed (e.g. neuroadapt's
and snnTorch's spikes differ: the peers did not compute the same thing).
"""
from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import json
import math
import os
import sys
from pathlib import Path
from typing import Dict, List, Mapping, Optional, TextIO

from neuroadapt.errors import ConfigError, UnsupportedOptionError

ENV_DIR = "NEUROADAPT_BENCHMARKS"
ENV_QUICK = "NEUROADAPT_BENCH_QUICK"
ENV_DEVICE = "NEUROADAPT_BENCH_DEVICE"
ENV_OVERRIDES = "NEUROADAPT_BENCH_OVERRIDES"
PACKAGE = "neuroadapt_benchmarks"
VALIDITY_KEYS = ("spikes_identical", "outputs_match")  # config flags that must not be False


def benchmarks_dir() -> Path:
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env).expanduser().resolve()
    import neuroadapt

    return Path(neuroadapt.__file__).resolve().parents[1] / "benchmarks"


def _defines_run(path: Path) -> bool:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return False
    return any(isinstance(n, ast.FunctionDef) and n.name == "run" for n in tree.body)


def list_benchmarks(directory: Optional[Path] = None) -> List[str]:
    """Names of the benchmarks in ``directory`` (default :func:`benchmarks_dir`), sorted."""
    d = Path(directory) if directory is not None else benchmarks_dir()
    if not d.is_dir():
        return []
    return sorted(p.stem.replace("_", "-") for p in d.glob("*.py")
                  if not p.stem.startswith("_") and _defines_run(p))


def _package(directory: Path):
    """Import ``directory`` as the package :data:`PACKAGE` (again if it moved)."""
    pkg = sys.modules.get(PACKAGE)
    if pkg is not None and list(getattr(pkg, "__path__", [])) == [str(directory)]:
        return pkg
    for key in [k for k in sys.modules if k == PACKAGE or k.startswith(PACKAGE + ".")]:
        del sys.modules[key]
    init = directory / "__init__.py"
    spec = importlib.util.spec_from_file_location(
        PACKAGE, init if init.exists() else None, submodule_search_locations=[str(directory)])
    if spec is None:  # no __init__.py: a bare namespace-like package
        spec = importlib.machinery.ModuleSpec(PACKAGE, None, is_package=True)
        spec.submodule_search_locations = [str(directory)]
    pkg = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = pkg
    if spec.loader is not None:
        spec.loader.exec_module(pkg)
    return pkg


def load_module(stem: str, directory: Optional[Path] = None):
    """Import ``<directory>/<stem>.py`` as ``neuroadapt_benchmarks.<stem>``."""
    d = Path(directory) if directory is not None else benchmarks_dir()
    _package(d)
    return importlib.import_module(f"{PACKAGE}.{stem}")


def parse_overrides(text: Optional[str]) -> Dict[str, object]:
    """``"repeats=5,T=50,peers=neuroadapt,snntorch"`` or a JSON object -> dict.  A comma-separated
    piece without ``=`` continues the previous value (so lists of peers need no quoting)."""
    text = (text or "").strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{ENV_OVERRIDES}: not valid JSON ({exc}); use key=value,key=value") from exc
        if not isinstance(value, dict):
            raise ConfigError(f"{ENV_OVERRIDES}: expected a JSON object, got {type(value).__name__}")
        return value
    out: Dict[str, object] = {}
    last = None
    for piece in text.split(","):
        if "=" in piece:
            key, value = piece.split("=", 1)
            last = key.strip()
            if not last:
                raise ConfigError(f"{ENV_OVERRIDES}: empty option name in {text!r}; use key=value,key=value")
            out[last] = value.strip()
        elif last is not None:
            out[last] = f"{out[last]},{piece.strip()}"
        elif piece.strip():
            raise ConfigError(f"{ENV_OVERRIDES}: {piece!r} is not key=value; use key=value,key=value")
    return out


def _check_result(name: str, result) -> str:
    """Validate the contract; return the results key (``results_ms`` or ``results_mb``)."""
    if not isinstance(result, dict):
        raise RuntimeError(f"benchmark {name!r}: run() returned {type(result).__name__}, not a dict")
    kind = "results_ms" if "results_ms" in result else "results_mb"
    missing = [k for k in ("bench", "config", kind, "ratios") if k not in result]
    if missing:
        raise RuntimeError(f"benchmark {name!r}: result lacks {', '.join(missing)}")
    for section in (kind, "ratios"):
        for key, value in result[section].items():
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise RuntimeError(f"benchmark {name!r}: {section}[{key!r}] = {value!r} is not a positive number")
    return kind


def run_benchmark(name: str, *, quick: bool = False, device: Optional[str] = None,
                  overrides: Optional[Mapping] = None) -> dict:
    """Run one benchmark and return its (validated) result dict."""
    available = list_benchmarks()
    if name not in available:
        raise UnsupportedOptionError(
            f"unknown benchmark {name!r}; available: {', '.join(available) or '(none found)'} "
            f"(looked in {benchmarks_dir()}; set {ENV_DIR} to use another folder)")
    cfg: Dict[str, object] = parse_overrides(os.environ.get(ENV_OVERRIDES))
    if os.environ.get(ENV_QUICK, "").strip().lower() in ("1", "true", "yes", "on"):
        cfg["quick"] = True
    if os.environ.get(ENV_DEVICE):
        cfg["device"] = os.environ[ENV_DEVICE]
    cfg.update(dict(overrides or {}))
    if quick:
        cfg["quick"] = True
    if device:
        cfg["device"] = device
    module = load_module(name.replace("-", "_"))
    result = module.run(cfg)
    result["bench"] = name
    _check_result(name, result)
    return result


def _fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 100 else f"{v:.1f}"


def format_table(result: Mapping) -> str:
    """A readable report of a result dict."""
    kind = "results_ms" if "results_ms" in result else "results_mb"
    unit = "ms" if kind == "results_ms" else "MiB"
    cfg = result.get("config", {})
    head = [f"benchmark {result['bench']}: device {cfg.get('device', '?')} ({cfg.get('device_name', '?')}), "
            f"{cfg.get('threads', '?')} torch threads"]
    shape = ", ".join(f"{k}={cfg[k]}" for k in ("T", "B", "in_features", "out_features") if k in cfg)
    if shape:
        head.append(f"  {shape}")
    if kind == "results_ms":
        head.append(f"  median of {cfg.get('repeats', '?')} calls after {cfg.get('warmup', '?')} warm-up, "
                    "forward + backward")
    elif "method" in cfg:
        head.append(f"  peak memory: {cfg['method']}")
    stats = cfg.get("stats_ms", {})
    saved = cfg.get("saved_for_backward_mb", {})
    width = max(len(p) for p in result[kind]) + 2
    rows = [f"  {'peer':<{width}}{unit:>10}" + (f"{'min':>10}{'iqr':>10}" if stats else "")
            + (f"{'saved for backward':>20}" if saved else "")]
    for peer, value in result[kind].items():
        row = f"  {peer:<{width}}{_fmt(value):>10}"
        if peer in stats:
            row += f"{_fmt(stats[peer]['min']):>10}{_fmt(stats[peer]['iqr']):>10}"
        if peer in saved:
            row += f"{_fmt(saved[peer]):>20}"
        rows.append(row)
    rat = [f"  {k:<34}{v:.3f}" for k, v in result["ratios"].items()]
    checks = [f"  {k} = {cfg[k]}" for k in ("spikes_identical", "spike_mismatches", "currents_identical",
                                              "weight_grad_max_rel_diff", "output_spike_rate") if k in cfg]
    if cfg.get("noisy_peers"):
        checks.append(f"  noisy: the inter-quartile range of {', '.join(cfg['noisy_peers'])} exceeds 20 % of "
                      f"the median (load average {cfg.get('loadavg_1min')}); rerun on a quiet machine")
    return "\n".join(head + rows + ["ratios:"] + rat + (["checks:"] + checks if checks else []))


def main(name: Optional[str] = None, as_json: bool = False, *, quick: bool = False,
         device: Optional[str] = None, overrides: Optional[Mapping] = None,
         stream: Optional[TextIO] = None) -> int:
    """Entry point of ``neuroadapt bench``.  ``name=None`` lists the benchmarks."""
    out = stream if stream is not None else sys.stdout
    if not name:
        names = list_benchmarks()
        print("available benchmarks: " + (", ".join(names) or f"(none in {benchmarks_dir()})"), file=out)
        return 0
    result = run_benchmark(name, quick=quick, device=device, overrides=overrides)
    if as_json:
        out.flush()
        print(json.dumps(result, allow_nan=False), file=out, flush=True)
    else:
        print(format_table(result), file=out, flush=True)
    failed = [k for k in VALIDITY_KEYS if result["config"].get(k) is False]
    if failed:
        print(f"warning: benchmark {name!r} failed its validity check ({', '.join(failed)} is false): "
              "the peers did not compute the same thing; see config", file=sys.stderr)
        return 1
    return 0
