"""Export a run directory to SpiNNaker with options the CLI does not expose (``subtract="fir"``),
verify it on NEST and the s16.15 emulator, and print the per-layer summary.

    PYTHONPATH=. python hardware/spinnaker/export_run.py RUN_DIR OUT [--n N] [--subtract reset|fir]

``--subtract fir`` uses ``fir_steps`` = the data set's number of steps (exact). Writes OUT/metrics.json.
"""
import argparse
import json
import time
from pathlib import Path

import torch

from neuroadapt.engine.exporting import load_run, verification_inputs
from neuroadapt.export.spinnaker import export_model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("out")
    ap.add_argument("--n", type=int, default=None, help="test samples (default: all)")
    ap.add_argument("--subtract", default="reset", choices=("reset", "fir"))
    ap.add_argument("--no-nest", action="store_true", help="emulator only (skip the NEST run)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, recipe, ds = load_run(args.run_dir)
    x, y = verification_inputs(ds, recipe, args.n)
    out = Path(args.out)
    out.mkdir(parents=True)
    t0 = time.time()
    r = export_model(model, out, dt=float(recipe["dataset"].get("dt") or 1e-3), verify=True, inputs=x, labels=y,
                     subtract=args.subtract, fir_steps=int(x.shape[0]), run_nest=not args.no_nest)
    r["wall_s"] = round(time.time() - t0, 1)
    (out / "metrics.json").write_text(json.dumps(r, indent=2, sort_keys=True))
    v = r["verification"]
    nest = v.get("nest", {"layers": {}, "accuracy": None})
    emu = v["emulator"]
    print(json.dumps({"samples": v["samples"], "synapses": r["synapses"], "wall_s": r["wall_s"],
                      "nest": {k: round(d["coincidence"], 4) for k, d in nest["layers"].items()},
                      "emulator_s1615": {k: round(d["coincidence"], 4) for k, d in emu["fixed"]["layers"].items()},
                      "emulator_float": {k: round(d["coincidence"], 4) for k, d in emu["float"]["layers"].items()},
                      "s1615_vs_float": {k: round(d["coincidence"], 4) for k, d in emu["fixed_vs_float"]["layers"].items()},
                      "accuracy": {"neuroadapt": v["reference"]["accuracy"], "nest": nest["accuracy"],
                                   "emulator_s1615": emu["fixed"]["accuracy"]}}))


if __name__ == "__main__":
    main()
