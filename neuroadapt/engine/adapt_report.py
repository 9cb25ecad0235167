"""Summary, table and plot of an adaptation run (see :mod:`neuroadapt.engine.adapt`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["summarise", "table_text", "write_plot"]


def summarise(per_seed: dict, corruptions: list[str]) -> dict:
    """per_seed[setting][method][seed][corruption] -> means and spreads over seeds (population std)."""
    err, err_std, mean, mean_std, seeds_mean = {}, {}, {}, {}, {}
    for setting, by_method in per_seed.items():
        for method, by_seed in by_method.items():
            arr = np.array([[by_seed[s][c] for c in corruptions] for s in sorted(by_seed)])  # (S, C)
            err.setdefault(setting, {})[method] = {c: round(float(v), 3) for c, v in zip(corruptions, arr.mean(0))}
            err_std.setdefault(setting, {})[method] = {c: round(float(v), 3) for c, v in zip(corruptions, arr.std(0))}
            m = arr.mean(1)
            seeds_mean.setdefault(setting, {})[method] = [round(float(v), 3) for v in m]
            mean.setdefault(setting, {})[method] = round(float(m.mean()), 3)
            mean_std.setdefault(setting, {})[method] = round(float(m.std()), 3)
    return {"corruptions": corruptions, "error": err, "error_std": err_std, "mean_error": mean,
            "mean_error_std": mean_std, "per_seed_mean_error": seeds_mean, "per_seed": per_seed}


_ABBR = {"gaussian_noise": "gaus", "shot_noise": "shot", "impulse_noise": "imp", "defocus_blur": "def",
         "glass_blur": "glass", "motion_blur": "mot", "zoom_blur": "zoom", "snow": "snow", "frost": "frost",
         "fog": "fog", "brightness": "brit", "contrast": "cont", "elastic_transform": "elas", "pixelate": "pix",
         "jpeg_compression": "jpeg"}


def table_text(metrics: dict) -> str:
    cs = metrics["corruptions"]
    lines = []
    for setting, by_method in metrics["error"].items():
        lines.append(f"\n{metrics['dataset']} severity {metrics['severity']}, {metrics['model']}, {setting}: "
                     f"error % (mean of seeds {metrics['seeds']})")
        lines.append("| method | " + " | ".join(_ABBR.get(c, c) for c in cs) + " | mean ± std |")
        lines.append("|---" * (len(cs) + 2) + "|")
        for method, errs in by_method.items():
            lines.append(f"| {method} | " + " | ".join(f"{errs[c]:.1f}" for c in cs) +
                         f" | {metrics['mean_error'][setting][method]:.2f} ± {metrics['mean_error_std'][setting][method]:.2f} |")
    return "\n".join(lines).lstrip("\n")


def write_plot(path, metrics: dict) -> Path:
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from neuroadapt.engine.rundir import atomic_write

    cs = metrics["corruptions"]
    settings = list(metrics["error"])
    fig, axes = plt.subplots(len(settings), 1, figsize=(12, 3.2 * len(settings)), squeeze=False)
    for ax, setting in zip(axes[:, 0], settings):
        methods = list(metrics["error"][setting])
        width = 0.8 / len(methods)
        for k, m in enumerate(methods):
            vals = [metrics["error"][setting][m][c] for c in cs]
            sd = [metrics["error_std"][setting][m][c] for c in cs]
            ax.bar(np.arange(len(cs)) + k * width, vals, width, yerr=sd,
                   label=f"{m} ({metrics['mean_error'][setting][m]:.1f})")
        ax.set_xticks(np.arange(len(cs)) + 0.4 - width / 2)
        ax.set_xticklabels([_ABBR.get(c, c) for c in cs])
        ax.set_ylabel("error %")
        ax.set_title(f"{metrics['dataset']} sev {metrics['severity']}, {metrics['model']}, {setting}")
        ax.legend(fontsize=7, ncol=len(methods))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    path = Path(path)
    atomic_write(path, lambda f: f.write(buf.getvalue()))
    return path
