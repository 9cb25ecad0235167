"""The ``neuroadapt`` command (thin: parses arguments, calls :mod:`neuroadapt.engine`).

Every :class:`neuroadapt.errors.NeuroadaptError` is printed as one line ``error: <message>`` on
stderr and the command exits with the error's exit code (2) -- never a traceback. Heavy imports
(torch, the engine) happen inside the commands, so ``neuroadapt --help`` is fast.
"""
from __future__ import annotations

import argparse
import sys

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neuroadapt",
        description="Biologically inspired spiking networks: train, evaluate, benchmark.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("quickstart", help="train the quickstart network on embedded data and report its accuracy")
    p.add_argument("--out", default=None, help="run directory (default: runs/quickstart; an earlier run is replaced)")
    p.set_defaults(func=_cmd_quickstart)

    p = sub.add_parser("train", help="train a recipe (YAML) into a run directory")
    p.add_argument("recipe", help="path of a recipe .yaml, or the name of one in models/")
    p.add_argument("--data-root", default=None, help="local data path for the recipe's data set")
    p.add_argument("--epochs", type=int, default=None, help="override training.epochs")
    p.add_argument("--device", default=None, help="override training.device (cpu, cuda, cuda:N, auto)")
    p.add_argument("--out", default=None, help="run directory (default: runs/<recipe name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out when this one completes")
    p.add_argument("--seed", type=int, default=None, help="override training.seed (fixes every RNG)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("eval", help="evaluate a run directory's checkpoint on its test split")
    p.add_argument("run_dir", help="run directory written by `neuroadapt train`")
    p.add_argument("--data-root", default=None, help="local data path (overrides the run's dataset.root)")
    p.add_argument("--device", default=None, help="device to evaluate on (default: the run's training.device)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object on the last line")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("bench", help="run a speed/memory benchmark against peer libraries")
    p.add_argument("name", nargs="?", default=None, help="benchmark name (omit to list them)")
    p.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("sim", help="run a simulation script from sims/ (omit NAME to list them)")
    p.add_argument("name", nargs="?", default=None, help="simulation name, e.g. lif_twin")
    p.add_argument("--out", default=None, help="output folder (default: the script's own)")
    p.set_defaults(func=_cmd_sim)
    return parser


def _cmd_quickstart(args) -> int:
    from neuroadapt.engine.run import quickstart

    quickstart(out=args.out)
    return 0


def _cmd_train(args) -> int:
    from neuroadapt.engine.run import train

    train(args.recipe, out=args.out, epochs=args.epochs, device=args.device, seed=args.seed,
          data_root=args.data_root, resume=args.resume, overwrite=args.overwrite)
    return 0


def _cmd_eval(args) -> int:
    import json

    from neuroadapt.engine.run import evaluate_run

    result = evaluate_run(args.run_dir, data_root=args.data_root, device=args.device)
    if args.json:
        print(json.dumps(result))
    return 0


def _cmd_bench(args) -> int:
    from neuroadapt.engine import bench

    return int(bench.main(args.name, as_json=args.json) or 0)


def _cmd_sim(args) -> int:
    import importlib.util

    from neuroadapt._paths import project_folder
    from neuroadapt.errors import UnsupportedOptionError

    folder = project_folder("sims")
    names = sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))
    if args.name is None:
        print("\n".join(names) if names else f"no simulations found in {folder}")
        return 0
    stem = args.name.replace("-", "_")
    if stem not in names:
        raise UnsupportedOptionError(f"unknown simulation {args.name!r}; available: {', '.join(names) or 'none'} "
                                     f"(in {folder}; set NEUROADAPT_SIMS to look elsewhere)")
    spec = importlib.util.spec_from_file_location(f"neuroadapt_sims.{stem}", folder / f"{stem}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return int(module.main([] if args.out is None else ["--out", args.out]) or 0)


def _one_line(message: str) -> str:
    return " ".join(str(message).split()) or "(no message)"


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    from neuroadapt.errors import NeuroadaptError

    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except NeuroadaptError as exc:
        sys.stdout.flush()
        print(f"error: {_one_line(exc)}", file=sys.stderr, flush=True)
        return getattr(exc, "exit_code", 2)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr, flush=True)
        return 130


if __name__ == "__main__":  # python -m neuroadapt.cli / torchrun -m neuroadapt.cli
    sys.exit(main())
