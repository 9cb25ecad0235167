"""``neuroadapt data info``: a summary of any event file neuroadapt reads (SHD, AER, tonic, dense)."""

from __future__ import annotations

import os

import numpy as np

from neuroadapt.data.convert import read_events

__all__ = ["info", "format_info"]


def _stats(values) -> dict:
    v = np.asarray(values, dtype=np.float64)
    if not v.size:
        return {"mean": 0.0, "min": 0.0, "max": 0.0}
    return {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max())}


def info(path) -> dict:
    """A JSON-able summary of an event file (SHD, AER, tonic-npy or dense-npz)."""
    es = read_events(path)
    counts = [len(u) for u in es.units]
    last = [float(t[-1]) if len(t) else 0.0 for t in es.times_as(np.float64)]
    used = np.unique(np.concatenate(es.units)) if es.n_spikes else np.zeros(0, np.int64)
    labels = np.asarray(es.labels, np.int64)
    n_classes = max(len(es.keys or ()), int(labels.max()) + 1 if len(labels) else 0)
    names = list(es.keys) if es.keys is not None else [str(k) for k in range(n_classes)]
    names += [str(k) for k in range(len(names), n_classes)]
    class_counts = np.bincount(labels[labels >= 0], minlength=n_classes).tolist() if len(labels) else [0] * n_classes
    speakers = sorted(int(s) for s in np.unique(es.speakers)) if es.speakers is not None and len(es) else []
    out = {
        "path": os.fspath(path),
        "format": es.fmt,
        "samples": len(es),
        "n_classes": n_classes,
        "classes": names,
        "class_counts": class_counts,
        "n_speakers": len(speakers),
        "speakers": speakers,
        "spikes": {"total": es.n_spikes, **{f"per_sample_{k}": v for k, v in _stats(counts).items()}},
        "duration_s": {k: v for k, v in _stats(last).items() if k != "min"},
        "n_channels": es.n_channels,
        "channels_used": int(len(used)),
        "channel_range": [int(used.min()), int(used.max())] if len(used) else None,
        "dtypes": es.details.get("dtypes", {}),
    }
    if es.meta_info:
        out["meta_info"] = sorted(es.meta_info)
    if es.dt is not None:
        out["dt"] = es.dt
    for key in ("dense_shape", "aer"):
        if key in es.details:
            out[key] = es.details[key]
    return out


def format_info(summary: dict) -> str:
    """Human-readable lines of an :func:`info` summary."""
    s = summary
    names = ", ".join(f"{i} {n!r} ({c})" for i, (n, c) in enumerate(zip(s["classes"], s["class_counts"])))
    sp = s["spikes"]
    lines = [
        f"file:         {s['path']} ({s['format']})",
        f"samples:      {s['samples']}",
        f"classes:      {s['n_classes']}: {names}",
        f"speakers:     {s['n_speakers']}: {', '.join(map(str, s['speakers'])) or '-'}",
        f"spikes:       {sp['total']} total; per sample mean {sp['per_sample_mean']:.1f}, "
        f"min {sp['per_sample_min']:.0f}, max {sp['per_sample_max']:.0f}",
        f"duration:     mean {s['duration_s']['mean']:.4f} s, max {s['duration_s']['max']:.4f} s (last spike)",
        f"channels:     {s['channels_used']} of {s['n_channels']} used"
        + (f" (ids {s['channel_range'][0]}..{s['channel_range'][1]})" if s["channel_range"] else ""),
        "dtypes:       " + (", ".join(f"{k} {v}" for k, v in s["dtypes"].items()) or "-"),
    ]
    if "dt" in s:
        lines.append(f"dt:           {s['dt']} s" + (f", spikes shape {tuple(s['dense_shape'])}" if "dense_shape" in s else ""))
    if "meta_info" in s:
        lines.append(f"meta_info:    {', '.join(s['meta_info'])}")
    if "aer" in s:
        a = s["aer"]
        params = ", ".join(f"{k}={v}" for k, v in a["layout_params"].items())
        lines.append(f"AER:          version {a['version']}, {a['records']} records, tick {a['tick_ns']} ns, "
                     f"{a['timestamp_bytes']}-byte stamps, span {a['time_span_s']:.4f} s")
        lines.append(f"address:      {a['address_layout']}" + (f" ({params})" if params else ""))
    return "\n".join(lines)
