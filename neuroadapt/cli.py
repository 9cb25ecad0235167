"""The ``neuroadapt`` command (thin: parses arguments, calls :mod:`neuroadapt.engine`).

Every :class:`neuroadapt.errors.NeuroadaptError` is printed as one line ``error: <message>`` on
stderr and the command exits with the error's exit code (2) -- never a traceback. Heavy imports
(torch, the engine) happen inside the commands, so ``neuroadapt --help`` is fast.
"""
from __future__ import annotations

import argparse
import os
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
    p.add_argument("--quick", action="store_true", help="small settings (a smoke test; the numbers mean little)")
    p.add_argument("--device", default=None, help="cpu (default), cuda or auto")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("export", help="export a run's network to nir, loihi, spinnaker or aer (optionally verified)")
    p.add_argument("run_dir", help="a run directory written by `neuroadapt train` / `quickstart`")
    p.add_argument("--to", required=True, help="target format: nir, loihi, spinnaker or aer")
    p.add_argument("--out", default=None, help="output folder (default RUN_DIR/export-TARGET)")
    p.add_argument("--verify", action="store_true",
                   help="run the exported network in the target's independent simulator and compare spikes")
    p.add_argument("--n-verify", type=int, default=None, help="--verify: number of test samples (default all)")
    p.add_argument("--data-root", default=None, help="data folder, for runs trained on local data")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a target's own option, repeatable (e.g. spinnaker: --option subtract=fir); "
                        "an unknown key lists the ones the target takes")
    p.set_defaults(func=_cmd_export)
    from neuroadapt.engine.adapt import add_parser as _add_adapt_parser

    _add_adapt_parser(sub)

    p = sub.add_parser("sim", help="run a simulation script from sims/ (omit NAME to list them)")
    p.add_argument("name", nargs="?", default=None, help="simulation name, e.g. lif_twin")
    p.add_argument("--out", default=None, help="output folder (default: the script's own)")
    p.set_defaults(func=_cmd_sim)

    _add_data_parser(sub)
    from neuroadapt.engine.continual import add_parser as _add_continual

    _add_continual(sub)
    return parser


_CONVERT_FORMATS = ("shd", "aer", "tonic-npy", "dense-npz")
_LAYOUTS = ("spinnaker", "loihi", "flat")


def _add_data_parser(sub) -> None:
    data = sub.add_parser("data", help="event data: make an SHD-format set, inspect or convert event files")
    dsub = data.add_subparsers(dest="data_command", metavar="{make-shd,info,convert,baseline,plot}")
    data.set_defaults(func=_cmd_data_help, data_parser=data)

    p = dsub.add_parser("info", help="summarise an SHD .h5, AER, tonic .npy or dense .npz event file")
    p.add_argument("file", help="event file (format detected from its content)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object on the last line")
    p.set_defaults(func=_cmd_data_info)

    p = dsub.add_parser("convert", help="convert between event file formats (nothing is left behind on error)")
    p.add_argument("input", help="event file: SHD .h5, .aer, tonic .npy or dense .npz (detected from content)")
    p.add_argument("output", help="file to write (replaced atomically)")
    p.add_argument("--to", default=None, metavar="{" + ",".join(_CONVERT_FORMATS) + "}",
                   help="output format (default: from the output's extension .h5/.aer/.npy/.npz)")
    p.add_argument("--dt", type=float, default=None, help="dense-npz: bin width in seconds (default: the input's, else 0.001)")
    p.add_argument("--duration", type=float, default=None,
                   help="dense-npz: window in seconds, a whole number of dt (default: up to the last spike)")
    p.add_argument("--address-layout", default=None, metavar="{" + ",".join(_LAYOUTS) + "}",
                   help="aer: address layout (default spinnaker)")
    p.add_argument("--neurons-per-core", type=int, default=None,
                   help="aer: neurons per core of the address layout (spinnaker 256, loihi 1024)")
    p.add_argument("--tick-ns", type=int, default=None,
                   help="aer: time-stamp unit in ns (default 1000 = 1 µs, or the input AER file's)")
    p.add_argument("--times-dtype", default=None, metavar="{float16,float32,float64}",
                   help="shd: dtype of spikes/times (default: the input's, else float32)")
    p.add_argument("--sample", type=int, default=None, help="keep only this sample (needed for tonic-npy output "
                                                             "of a multi-sample input)")
    p.set_defaults(func=_cmd_data_convert)

    p = dsub.add_parser("baseline", help="linear baseline of an SHD-format train/test pair (logistic regression "
                                         "on time-binned spike counts, tuned on held-out training speakers)")
    p.add_argument("--root", default=None,
                   help="folder with shd_train.h5 / shd_test.h5 (default: the shipped spoken digits)")
    p.add_argument("--dt", type=float, default=0.02, help="bin width in seconds (default 0.02)")
    p.add_argument("--duration", type=float, default=1.4, help="window in seconds (default 1.4)")
    p.add_argument("--val-speakers", type=int, default=4, help="training speakers held out for tuning (default 4)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object on the last line")
    p.set_defaults(func=_cmd_data_baseline)

    p = dsub.add_parser("plot", help="spike rasters of a few samples of an SHD-format file (PNG)")
    p.add_argument("file", nargs="?", default=None,
                   help="SHD .h5 file (default: the shipped spoken digits' training file)")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--samples", default=None, help="comma-separated sample indices (default: --n random ones)")
    p.add_argument("--n", type=int, default=6, help="number of random samples (default 6)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random choice (default 0)")
    p.set_defaults(func=_cmd_data_plot)

    p = dsub.add_parser("make-shd", help="generate spoken digits in the SHD format (espeak-ng or your WAV files)")
    p.add_argument("--out", default=None, help="SHD .h5 file to write")
    p.add_argument("--wav-dir", default=None, help="folder of WAV files (listed in --labels)")
    p.add_argument("--labels", default=None,
                   help="CSV of filename,label[,speaker] rows, names relative to --wav-dir (default DIR/labels.csv)")
    p.add_argument("--espeak", action="store_true", help="synthesise the 20 SHD words with espeak-ng voices")
    p.add_argument("--speakers", type=int, default=None, help="--espeak: number of synthetic speakers (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    p.add_argument("--no-augment", action="store_true",
                   help="no speed/pitch augmentation (default: augmented for --espeak, none for recordings)")
    p.set_defaults(func=_cmd_data_make_shd)


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

    return int(bench.main(args.name, as_json=args.json, quick=args.quick, device=args.device) or 0)


def _cmd_export(args) -> int:
    from neuroadapt.engine.exporting import export_run

    import yaml

    from neuroadapt.errors import InvalidInputError

    options = {}
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(f"--option {item!r}: expected KEY=VALUE")
        options[key.strip()] = yaml.safe_load(value) if value.strip() else None
    export_run(args.run_dir, args.to, out=args.out, verify=args.verify, data_root=args.data_root,
               n_verify=args.n_verify, overwrite=args.overwrite, options=options)
    return 0


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


def _cmd_data_help(args) -> int:
    args.data_parser.print_help()
    return 2


def _cmd_data_info(args) -> int:
    import json

    from neuroadapt.data.info import format_info, info

    summary = info(args.file)
    print(json.dumps(summary) if args.json else format_info(summary))
    return 0


def _cmd_data_convert(args) -> int:
    from neuroadapt.data.convert import convert_file
    from neuroadapt.errors import InvalidInputError

    if args.to is not None and args.to not in _CONVERT_FORMATS:
        raise InvalidInputError(f"--to {args.to!r}: choose one of {', '.join(_CONVERT_FORMATS)}")
    if args.address_layout is not None and args.address_layout not in _LAYOUTS:
        raise InvalidInputError(f"--address-layout {args.address_layout!r}: choose one of {', '.join(_LAYOUTS)}")
    if args.times_dtype is not None and args.times_dtype not in ("float16", "float32", "float64"):
        raise InvalidInputError(f"--times-dtype {args.times_dtype!r}: choose float16, float32 or float64")
    params = None if args.neurons_per_core is None else {"neurons_per_core": args.neurons_per_core}
    if params is not None and args.address_layout is None:
        args.address_layout = "spinnaker"
    result = convert_file(args.input, args.output, to=args.to, sample=args.sample, dt=args.dt,
                          duration=args.duration, layout=args.address_layout, layout_params=params,
                          tick_ns=args.tick_ns, times_dtype=args.times_dtype)
    extra = "".join(f", {k}={v}" for k, v in result.items()
                    if k not in ("input", "input_format", "output", "samples", "spikes", "format"))
    print(f"wrote {result['output']} ({result['format']}): {result['samples']} samples, "
          f"{result['spikes']} spikes from {result['input_format']}{extra}")
    return 0


def _cmd_data_baseline(args) -> int:
    import json

    from neuroadapt.data.baselines import linear_baseline
    from neuroadapt.data.spoken_digits import SpokenDigits

    result = linear_baseline(SpokenDigits(root=args.root, dt=args.dt, duration=args.duration),
                             val_speakers=args.val_speakers)
    if args.json:
        print(json.dumps(result))
    else:
        c = result["choice"]
        print(f"linear baseline: test accuracy {result['test_accuracy']:.4f} (train {result['train_accuracy']:.4f}); "
              f"chosen on {args.val_speakers} held-out training speakers: {c['n_bins']} time bins, "
              f"{c['transform']}, C={c['C']:g} (validation accuracy {c['val_accuracy']:.4f})")
    return 0


def _cmd_data_plot(args) -> int:
    from neuroadapt.data.plot import plot_samples
    from neuroadapt.errors import InvalidInputError

    path = args.file
    if path is None:
        from neuroadapt.data.spoken_digits import shipped_files

        path = shipped_files()["train"]
    indices = None
    if args.samples is not None:
        try:
            indices = [int(v) for v in args.samples.split(",") if v.strip()]
        except ValueError:
            raise InvalidInputError(f"--samples {args.samples!r}: expected comma-separated integers") from None
    result = plot_samples(path, args.out, indices=indices, n=args.n, seed=args.seed)
    print(f"wrote {result['out']} (samples {', '.join(map(str, result['indices']))})")
    return 0


def _cmd_data_make_shd(args) -> int:
    import os

    from neuroadapt.errors import InvalidInputError

    from_files = args.wav_dir is not None or args.labels is not None
    if not args.out:
        raise InvalidInputError("data make-shd needs --out FILE (the SHD .h5 file to write)")
    if from_files and args.espeak:
        raise InvalidInputError("give either --espeak or --wav-dir DIR [--labels CSV], not both")
    if not from_files and not args.espeak:
        raise InvalidInputError("data make-shd needs a source: --wav-dir DIR [--labels CSV] (your recordings; "
                                "the CSV defaults to DIR/labels.csv) or --espeak (synthesised voices)")
    if args.wav_dir is not None and not os.path.isdir(args.wav_dir):
        raise InvalidInputError(f"--wav-dir {args.wav_dir!r} is not a folder")
    if args.labels is not None and not os.path.isfile(args.labels):
        raise InvalidInputError(f"--labels {args.labels!r} is not a file")
    if args.speakers is not None and from_files:
        raise InvalidInputError("--speakers goes with --espeak (recordings take their speakers from the labels CSV)")
    if args.speakers is not None and args.speakers < 1:
        raise InvalidInputError(f"--speakers must be a positive number of speakers, got {args.speakers}")
    if args.seed < 0:
        raise InvalidInputError(f"--seed must be a non-negative integer, got {args.seed}")

    from neuroadapt.data.spoken_digits import make_shd

    kwargs = {} if args.speakers is None else {"n_speakers": args.speakers}
    summary = make_shd(args.out, wav_dir=args.wav_dir, labels_csv=args.labels, espeak=args.espeak,
                       seed=args.seed, augment=False if args.no_augment else None, progress=True, **kwargs)
    if isinstance(summary, dict):
        words = {"n_samples": "samples", "n_classes": "classes", "n_speakers": "speakers", "spikes_total": "spikes"}
        details = ", ".join(f"{summary[k]} {w}" for k, w in words.items() if isinstance(summary.get(k), int))
        print(f"wrote {summary.get('path', args.out)}" + (f" ({details})" if details else ""))
    else:
        print(f"wrote {args.out}")
    return 0


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
    except BrokenPipeError:  # e.g. `neuroadapt data info F | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # python -m neuroadapt.cli / torchrun -m neuroadapt.cli
    sys.exit(main())
