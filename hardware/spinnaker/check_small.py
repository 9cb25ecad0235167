"""SpiNNaker export on small random networks: per-layer spike coincidence (NEST and the s16.15
emulator against neuroadapt), printed as a markdown table.

    PYTHONPATH=. python hardware/spinnaker/check_small.py [--subtract reset|fir]

Networks: SpikingClassifier 20 -> 16 -> 12 -> 4, beta 0.9, alpha 0.7, weights x3 (so neurons fire
often and overshoot), torch seed 0; inputs: 8 samples x 30 steps of Bernoulli(0.3) spikes (seed 1), dt 1 ms.
"""
import argparse
import tempfile
from pathlib import Path

import torch

from neuroadapt.engine.models import SpikingClassifier
from neuroadapt.export.spinnaker import export_model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--subtract", default="reset", choices=("reset", "fir"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    x = (torch.rand(30, 8, 20, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    print("| neuron | reset | recurrent | spikes (ref) | NEST hidden0 / hidden1 | s16.15 emulator hidden0 / hidden1 "
          "| s16.15 vs float64 twin | NEST readout max err |")
    print("|---|---|---|---|---|---|---|---|")
    for neuron in ("leaky", "synaptic"):
        for reset, rec in (("zero", False), ("zero", True), ("subtract", False), ("subtract", True)):
            torch.manual_seed(0)
            m = SpikingClassifier(20, 4, hidden=(16, 12), neuron=neuron, recurrent=rec, reset=reset,
                                  beta=0.9, alpha=0.7).eval()
            with torch.no_grad():
                for layer in m.layers:
                    layer.fc.weight.mul_(3.0)
            with tempfile.TemporaryDirectory() as tmp:
                v = export_model(m, Path(tmp), dt=1e-3, verify=True, inputs=x, subtract=args.subtract,
                                 fir_steps=30)["verification"]

            def f(d):
                return " / ".join("%.4f" % d[k]["coincidence"] for k in ("hidden0", "hidden1"))

            print(f"| {neuron} | {reset} | {rec} | {sum(v['reference']['spikes'].values())} | "
                  f"{f(v['nest']['layers'])} | {f(v['emulator']['fixed']['layers'])} | "
                  f"{f(v['emulator']['fixed_vs_float']['layers'])} | {v['nest']['readout_max_abs_err']:.2g} |")


if __name__ == "__main__":
    main()
