"""Shared helpers of the benchmarks: configuration, timing, peak memory, environment.

Loaded by :mod:`neuroadapt.engine.bench` as ``neuroadapt_benchmarks.common``; benchmark
files import it relatively (``from .common import ...``).

Timing (:func:`time_interleaved`): every peer is warmed up, then measured in rounds; each
round calls every peer once, in an order rotated from round to round, so that a change of
machine load hits all peers alike.  Gradients are cleared before each call, outside the
timed window; the garbage collector is collected before and disabled during each call; on
CUDA the device is synchronised before the clock starts and before it stops.

Peak memory (:func:`peak_memory_bytes`): on CUDA, ``torch.cuda.max_memory_allocated`` after
``reset_peak_memory_stats``, minus what was allocated when the region began.  On CPU,
torch keeps no peak counter, so the region runs under ``torch.profiler`` with
``profile_memory=True``; every allocation and free of torch's CPU allocator inside the
region is then a ``[memory]`` event with a signed byte count, and the peak is the maximum
of their running sum (:func:`peak_from_memory_events`).  Both report the peak *above* the
level at the start of the region: tensors that exist before it (input, parameters, loss
weights) are not counted, every tensor allocated inside it (activations, saved tensors,
gradients, temporaries of the backward pass) is.
"""
from __future__ import annotations

import contextlib
import gc
import os
import platform
import statistics
import tempfile
import time
from typing import Callable, Dict, Iterable, List, Mapping, Optional

import torch

from neuroadapt.errors import ConfigError, UnsupportedOptionError

MB = 1024.0 * 1024.0  # results_mb are MiB (2**20 bytes)


# ----------------------------------------------------------------------------- config
def _coerce(key: str, value, default):
    """Convert an override (possibly a string from the environment) to the default's type."""
    if default is None:
        return value
    if type(value) is type(default):
        return value
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, str):
            return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    except (TypeError, ValueError):
        pass
    raise ConfigError(
        f"benchmark option {key}={value!r}: expected a {type(default).__name__} "
        f"(default {default!r}); fix the value in --set / NEUROADAPT_BENCH_OVERRIDES"
    )


def merge_config(defaults: Mapping, overrides: Optional[Mapping], quick: Mapping) -> dict:
    """defaults <- quick values (if ``overrides['quick']``) <- the remaining overrides.

    Unknown keys raise :class:`UnsupportedOptionError` naming the known ones.
    """
    overrides = dict(overrides or {})
    use_quick = _coerce("quick", overrides.pop("quick", False), False)
    cfg = dict(defaults)
    if use_quick:
        cfg.update(quick)
    for key, value in overrides.items():
        if key not in defaults:
            raise UnsupportedOptionError(
                f"unknown benchmark option {key!r}; known options: {', '.join(sorted(defaults))}"
            )
        cfg[key] = _coerce(key, value, defaults[key])
    cfg["quick"] = bool(use_quick)
    return cfg


# ----------------------------------------------------------------------------- device
def resolve_device(name: str) -> torch.device:
    """``"cpu"``, ``"cuda"``, ``"cuda:N"``; ``"auto"`` = CUDA when available, else CPU."""
    name = (name or "cpu").lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UnsupportedOptionError(
                f"benchmark device {name!r} asked for, but torch.cuda.is_available() is False "
                "on this machine; use device=cpu (the default) or run on a machine with a GPU"
            )
        return torch.device(name)
    if name != "cpu":
        raise UnsupportedOptionError(f"benchmark device {name!r}: use cpu, cuda, cuda:N or auto")
    return torch.device("cpu")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: torch.device) -> dict:
    """What a reader needs to interpret the numbers: device, threads, versions."""
    import neuroadapt

    env = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_model(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "neuroadapt": getattr(neuroadapt, "__version__", "?"),
        "python": platform.python_version(),
        "loadavg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    for mod in ("snntorch", "norse"):
        try:
            env[mod] = __import__(mod).__version__
        except Exception:  # pragma: no cover - reported, not fatal
            env[mod] = None
    return env


@contextlib.contextmanager
def num_threads(n: int):
    """Temporarily set torch's intra-op thread count (0 = leave as is)."""
    old = torch.get_num_threads()
    if n and n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


# ----------------------------------------------------------------------------- timing
class Peer:
    """One contender: ``step()`` runs forward + backward; ``params`` are cleared between calls."""

    def __init__(self, name: str, step: Callable[[], object], params: Iterable[torch.Tensor], what: str):
        self.name, self.step, self.params, self.what = name, step, list(params), what

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None


def _timed_call(peer: Peer, device: torch.device) -> float:
    peer.zero_grad()
    gc.collect()
    gc.disable()
    try:
        synchronize(device)
        t0 = time.perf_counter()
        peer.step()
        synchronize(device)
        t1 = time.perf_counter()
    finally:
        gc.enable()
    return (t1 - t0) * 1e3


def time_interleaved(peers: List[Peer], device: torch.device, warmup: int, repeats: int) -> Dict[str, List[float]]:
    """Milliseconds per call of each peer: ``warmup`` discarded calls each, then ``repeats``
    rounds in rotating order.  Returns ``{name: [ms, ...]}``."""
    for peer in peers:
        for _ in range(max(warmup, 0)):
            _timed_call(peer, device)
    times: Dict[str, List[float]] = {p.name: [] for p in peers}
    n = len(peers)
    for r in range(max(repeats, 1)):
        for k in range(n):
            peer = peers[(r + k) % n]
            times[peer.name].append(_timed_call(peer, device))
    for peer in peers:
        peer.zero_grad()
    return times


def summarize(samples: List[float]) -> dict:
    """Median, min, max and inter-quartile range of a list of samples."""
    s = sorted(samples)
    if len(s) >= 4:
        q = statistics.quantiles(s, n=4, method="inclusive")
        iqr = q[2] - q[0]
    else:
        iqr = s[-1] - s[0]
    return {"median": statistics.median(s), "min": s[0], "max": s[-1], "iqr": iqr, "n": len(s)}


# ----------------------------------------------------------------------------- memory
def peak_from_memory_events(events: Iterable[tuple]) -> int:
    """Peak of the running sum of ``(time, signed_bytes)`` events, in time order (stable for
    ties, i.e. the order the allocator reported them); never below 0 (the start level)."""
    total = peak = 0
    for _, nbytes in sorted(events, key=lambda e: e[0]):
        total += nbytes
        peak = max(peak, total)
    return peak


_NOISE = ("profiler_start", "profiler_stop", "gpuGetDeviceCount", "Memory block of unknown size",
          "cudaGetDeviceCount", "CUPTI")


@contextlib.contextmanager
def _filtered_native_stderr():
    """The profiler's C++ side logs start/stop lines on fd 2; keep everything else."""
    try:
        fd = os.dup(2)
    except OSError:  # pragma: no cover - no fd 2
        yield
        return
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        try:
            os.dup2(tmp.fileno(), 2)
            yield
        finally:
            os.dup2(fd, 2)
            os.close(fd)
            tmp.seek(0)
            kept = [ln for ln in tmp.read().decode("utf-8", "replace").splitlines(True)
                    if not any(n in ln for n in _NOISE)]
            if kept:
                os.write(2, "".join(kept).encode())


def cpu_peak_bytes(fn: Callable[[], object]) -> int:
    """Peak bytes held by torch's CPU allocator above the start level while ``fn()`` runs,
    reconstructed from ``torch.profiler`` memory events."""
    from torch.profiler import ProfilerActivity, profile

    gc.collect()
    with _filtered_native_stderr():
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=False) as prof:
            fn()
    events = []
    for e in prof.profiler.kineto_results.events():
        if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU:
            events.append((e.start_ns(), int(e.nbytes())))
    return peak_from_memory_events(events)


def cuda_peak_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """Peak bytes allocated on ``device`` above the start level while ``fn()`` runs."""
    gc.collect()
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    start = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - start


def peak_memory_bytes(fn: Callable[[], object], device: torch.device) -> int:
    return cuda_peak_bytes(fn, device) if device.type == "cuda" else cpu_peak_bytes(fn)


MEMORY_METHOD = {
    "cpu": "torch.profiler(profile_memory=True): peak of the running sum of the CPU allocator's "
           "alloc/free events inside forward+backward, above the level at its start",
    "cuda": "torch.cuda.max_memory_allocated after reset_peak_memory_stats, minus "
            "memory_allocated at the start of forward+backward",
}


def set_glibc_mmap_threshold(nbytes: int) -> bool:
    """Serve every heap block of at least ``nbytes`` from its own mmap (glibc ``mallopt``).

    Why: a peer that materialises many same-sized large temporaries (Norse's sequence modules
    index ``input[t]`` in a Python loop, so every step of backward allocates a full (T, B, N)
    zero tensor in ``select_backward``) can fragment glibc's heap so badly that the process RSS
    grows by gigabytes while torch's own accounting stays flat.  Blocks served by mmap go back
    to the OS on free, so RSS stays bounded.  This changes neither what torch allocates nor the
    profiler's numbers, only where glibc places the blocks (and makes large allocations slower,
    which the memory benchmark does not time).  Returns False where it is not available."""
    if nbytes <= 0:
        return False
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(-3, int(nbytes)))  # -3 = M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


def saved_tensor_bytes(fn: Callable[[], object], exclude: Iterable[torch.Tensor] = ()) -> int:
    """Bytes of the distinct storages autograd saves for backward while ``fn()`` runs
    (``torch.autograd.graph.saved_tensors_hooks``), storages of ``exclude`` not counted.
    Secondary measure only: it misses tensors a custom Function keeps as plain ``ctx``
    attributes and all transient memory of the backward pass."""
    skip = {t.untyped_storage().data_ptr() for t in exclude}
    seen: Dict[int, int] = {}

    def pack(t):
        st = t.untyped_storage()
        ptr = st.data_ptr()
        if ptr not in skip:
            seen[ptr] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def timed_bench(name: str, cfg: dict, device: torch.device, build: Callable, check: Callable,
                ratios: Callable, describe: Mapping) -> dict:
    """The common body of a speed benchmark: ``build(cfg, device)`` (a dict with ``peers``), the
    correctness ``check(setup)``, interleaved timing, and the result object of the bench contract
    (median ms per peer, ``ratios(results)``, the environment, ``describe`` and the noisy peers --
    a spread over 20 % of the median means the machine was busy)."""
    with num_threads(cfg["threads"]):
        setup = build(cfg, device)
        peers: List[Peer] = list(setup["peers"].values())
        checks = check(setup)
        times = time_interleaved(peers, device, cfg["warmup"], cfg["repeats"])
        env = environment(device)
    stats = {n: summarize(v) for n, v in times.items()}
    results = {n: st["median"] for n, st in stats.items()}
    config = dict(cfg)
    config.update(env)
    config.update({"dtype": "float32",
                   "measure": "median ms of forward + loss + backward per call, after warm-up; "
                              "peers interleaved round-robin",
                   **describe,
                   "peers": {p.name: p.what for p in peers},
                   "stats_ms": stats})
    config.update(checks)
    config["noisy_peers"] = [n for n, st in stats.items() if st["n"] >= 4 and st["iqr"] > 0.2 * st["median"]]
    return {"bench": name, "config": config, "results_ms": results, "ratios": ratios(results)}
