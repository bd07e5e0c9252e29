"""`python -m ml ...`: data, training, evaluation and prediction from the terminal.

Heavy imports (TensorFlow) happen inside the commands so `--help` is instant.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import MISSING, fields
from pathlib import Path

from ml.config import ARCHS, TrainConfig


def _data_download(args):
    from ml.download import download

    print(download(args.dest, args.source))


def _data_default(args):
    from ml.synth.generate import generate

    first = Path(args.first).read_text().split() if args.first else None
    summary = generate(Path(args.dest), per_word=args.per_word, seed=args.seed,
                       workers=args.workers, progress=True, first=first)
    print(json.dumps(summary, indent=1))


def _data_speakers(args):
    from ml.speakers import link_half

    counts = link_half(args.sources, args.half, args.dest, args.repeat)
    print(json.dumps({"dest": str(args.dest), "half": args.half, "clips": counts}, indent=1))


def _data_negatives(args):
    from ml.negatives import build

    about = build(args.source, args.dest, args.part, args.hop, args.mine,
                  log=lambda m: print(m, file=sys.stderr))
    print(json.dumps({"dest": str(args.dest), **about}, indent=1))


def _train(args):
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig)}
    if len(values["data"]) == 1:     # one --data: a folder, as in a run made before several were possible
        values["data"] = values["data"][0]
    cfg = TrainConfig(**values)
    cfg.check()                  # before TensorFlow loads: a bad setting is refused at once
    from ml.train import train

    run_dir = train(cfg, verbose=1 if sys.stdout.isatty() else 2)
    print(run_dir)


def _rehearsal(args):
    from ml.rehearsal import build

    path = build(Path(args.model), Path(args.data), args.per_label, seed=args.seed,
                 log=lambda m: print(m, file=sys.stderr))
    print(f"{path} ({path.stat().st_size / 1e6:.1f} MB)")


def _evaluate(args):
    from ml.classifier import Classifier
    from ml.evaluate import evaluate_folder
    from ml.metrics import format_report

    report, _ = evaluate_folder(Classifier(args.model), Path(args.data))
    print(json.dumps(report) if args.json else format_report(report))


def _export(args):
    if args.format == "litert" and not args.out:
        args.format = None                  # the run's own model.tflite, as without --format
    if args.format or args.out:
        return _export_format(args)
    if args.eval or args.evaluation or args.data:
        raise ValueError("--data, --eval and --evaluation go with --format and --out")
    from ml import runs
    from ml.config import check_unknown_weight
    from ml.evaluate import evaluate_test_split
    from ml.graph import write_serving_graphs

    run_dir = runs.check_run(Path(args.model))
    config = runs.read_json(run_dir / "config.json")
    if args.unknown_weight is not None:
        check_unknown_weight(args.unknown_weight, "--unknown-weight")
        config["unknown_weight"] = args.unknown_weight
        runs.write_json(run_dir / "config.json", config)
    size = write_serving_graphs(run_dir)
    print(f"wrote {run_dir / runs.SERVING_FILE} ({size / 1024:,.0f} KB) and {runs.WINDOW_FILE}")
    try:  # the test-split figures must describe what is served now
        report = evaluate_test_split(run_dir)
        print(f"test split: accuracy {report['accuracy']:.2%} on {report['n']} clips")
    except ValueError as exc:
        print(f"warning: test-split figures not refreshed: {exc}", file=sys.stderr)
    print(run_dir)


def _export_format(args):
    """--format F --out PATH: the run as a keras, tflite, tflite-int8 or bundle file."""
    if not (args.format and args.out):
        raise ValueError("--format and --out go together (e.g. --format tflite --out model.tflite)")
    if args.unknown_weight is not None:
        raise ValueError("--unknown-weight rewrites the serving files; export them first, then "
                         "--format exports what is served")
    from ml import runs
    from ml.export.formats import check_format

    check_format(runs.read_json(runs.check_run(Path(args.model)) / "config.json"), args.format)
    evaluations = []
    for name in args.evaluation:   # stored evaluations to quote in the bundle's model card
        try:
            record = runs.read_json(Path(name))
            evaluations.append({"folder": str(record["folder"]), "report": dict(record["report"])})
        except (OSError, ValueError, KeyError, TypeError):
            raise ValueError(f"{name}: not an evaluation record (JSON with folder and report)") from None
    from ml.export.writers import export

    result = export(args.model, args.format, args.out, data=args.data, eval_dirs=args.eval,
                    evaluations=evaluations, log=lambda msg: print(msg, flush=True))
    print(f"wrote {result['out']} ({result['bytes'] / 1024:,.0f} KB, {result['format']}) "
          f"in {result['seconds']:.1f} s")


def _predict(args):
    from ml.audio import decode
    from ml.classifier import Classifier

    clf = Classifier(args.model)
    results, failed = [], 0
    for name in args.files:
        try:
            pred = clf.classify(*decode(name))
        except ValueError as exc:
            failed += 1
            print(f"error: {exc}", file=sys.stderr)
            continue
        results.append({"file": name, "label": pred.label, "confidence": round(pred.confidence, 4),
                        "probabilities": {k: round(v, 4) for k, v in pred.probabilities.items()}})
        if not args.json:
            top = sorted(pred.probabilities.items(), key=lambda kv: -kv[1])[:3]
            print(f"{name}: {pred.label} ({pred.confidence:.1%})   " +
                  "  ".join(f"{k} {v:.1%}" for k, v in top))
    if args.json:
        print(json.dumps(results))
    return 1 if failed else 0


def _detect(args):
    """Every command in each file, with when it was said (ml/detect.py)."""
    from ml.audio import decode
    from ml.classifier import Classifier
    from ml.detect import Detector, DetectorConfig

    if not args.max_seconds > 0:
        raise ValueError("--max-seconds must be a positive number of seconds")
    classifier = Classifier(args.model)
    overrides = {} if args.threshold is None else {"threshold": args.threshold, "thresholds": {}}
    detector = Detector(classifier, DetectorConfig.for_run(classifier.config, overrides, args.sensitivity))
    print(f"sensitivity {args.sensitivity}, threshold {detector.config.threshold:g}", file=sys.stderr)
    results, failed = [], 0
    for name in args.files:
        try:
            wave, rate = decode(name, max_seconds=args.max_seconds)
            found = [d.to_dict() for d in detector.detect(wave, rate)]
        except ValueError as exc:
            failed += 1
            print(f"error: {exc}", file=sys.stderr)
            results.append({"file": name, "error": str(exc)})
            continue
        results.append({"file": name, "duration_s": round(len(wave) / rate, 3), "detections": found})
        if not args.json:
            print(f"{name} ({len(wave) / rate:.1f} s): "
                  f"{len(found) or 'no'} command{'' if len(found) == 1 else 's'}")
            for d in found:
                print(f"  {d['time_s']:8.2f} s  {d['label']:<10} {d['confidence']:.1%}")
    if args.json:
        print(json.dumps(results))
    return 1 if failed else 0


_TYPES = {"str": str, "int": int, "float": float, "bool": bool}


def _flags(f) -> list[str]:
    """--batch-size for batch_size; a field's short flag (--lr) first when it has one."""
    long = "--" + f.name.replace("_", "-")
    return [f.metadata["flag"], long] if f.metadata["flag"] else [long]


def _argument(f) -> dict:
    """argparse options for one TrainConfig field, from its type, default and help."""
    kind = _TYPES[str(f.type).split("|")[0].strip()]
    meta = f.metadata
    if f.default is MISSING:
        return {"dest": f.name, "required": True, "help": meta["help"],
                **({"action": "append", "metavar": "DIR"} if meta["many"] else {})}
    options = {"dest": f.name, "default": f.default,
               "help": meta["help"] + ("" if f.default is None else f" (default: {f.default})")}
    if kind is bool:
        return {**options, "action": argparse.BooleanOptionalAction}
    return {**options, "type": kind, "choices": list(meta["choices"]) if meta["choices"] else None,
            **({"metavar": "RUN"} if f.name == "init" else {})}


def parser() -> argparse.ArgumentParser:
    from ml.detect import DEFAULT_SENSITIVITY, SENSITIVITIES
    from ml.synth.generate import DEFAULT_PER_WORD, DEFAULT_SEED

    p = argparse.ArgumentParser(prog="python -m ml", description="Hark: train and use spoken-command classifiers.")
    sub = p.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="get a data set").add_subparsers(dest="what", required=True)
    d = data.add_parser("download", help="the official mini Speech Commands set (needs network)")
    d.add_argument("--dest", default="data", help="folder to cache it in (default: data)")
    d.add_argument("--from", dest="source", help="a local mini_speech_commands.zip or file:// URL")
    d.set_defaults(func=_data_download)
    d = data.add_parser("default", help="build the offline synthetic default set")
    d.add_argument("--dest", default="data/default")
    d.add_argument("--per-word", type=int, default=DEFAULT_PER_WORD, help="clips per command word")
    d.add_argument("--seed", type=int, default=DEFAULT_SEED)
    d.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    d.add_argument("--first", metavar="LIST", help="a file of clip paths (label/name.wav, one a "
                   "line) to make before the others (the gallery's page of clips)")
    d.set_defaults(func=_data_default)
    d = data.add_parser("speakers", help="link one half of real speakers' clips (split by speaker) "
                                         "into a data folder, to train on it and check on the other")
    d.add_argument("sources", nargs="+", help="folders in the one-folder-per-label layout, "
                                              "e.g. ../shared/speech/words ../shared/speech/extra")
    d.add_argument("--half", type=int, choices=(0, 1), required=True)
    d.add_argument("--dest", required=True, help="a new folder for the links")
    d.add_argument("--repeat", type=int, default=1,
                   help="how many times each training epoch hears these clips (oversampling a few "
                        "real voices beside a large synthetic set; default 1)")
    d.set_defaults(func=_data_speakers)
    d = data.add_parser("negatives", help="cut a folder of real audio with no command in it "
                                          "(speech/, music/, noise/) into training windows",
                        description="Writes one part of the folder (its groups split 60/20/20 into "
                                    "train, dev and test, see ml/negatives.py) as _unknown_ (speech) "
                                    "and _silence_ (music, noise, pauses) windows; with --mine, also "
                                    "the windows a model's detector wrongly fires on.")
    d.add_argument("source", help="a background folder, e.g. ../shared/background")
    d.add_argument("--dest", required=True, help="a new data folder")
    d.add_argument("--part", choices=("train", "dev", "test"), default="train",
                   help="which part to write (default train: dev and test are for measuring)")
    d.add_argument("--hop", type=float, default=0.5, help="seconds between windows (default 0.5)")
    d.add_argument("--mine", metavar="RUN", help="also add the windows this run's detector "
                   "fires on (hard negatives)")
    d.set_defaults(func=_data_negatives)

    t = sub.add_parser("train", help="train a model on a data folder; prints the run directory",
                       epilog="architectures: " + "; ".join(
                           f"{a.name}: {a.about}" for a in ARCHS.values()))
    for f in fields(TrainConfig):
        t.add_argument(*_flags(f), **_argument(f))
    t.set_defaults(func=_train)

    from ml.rehearsal import PER_LABEL

    h = sub.add_parser("rehearsal", help="write a run's rehearsal pack (rehearsal.npz): compact "
                                         "embeddings of its training clips, so new words can be "
                                         "taught to it in seconds (train --init RUN)")
    h.add_argument("--model", required=True, help="run directory")
    h.add_argument("--data", required=True,
                   help="the folder its split.json's paths are under (its config.json's data)")
    h.add_argument("--per-label", type=int, default=PER_LABEL,
                   help=f"clips per label and data set (default: {PER_LABEL})")
    h.add_argument("--seed", type=int, default=0)
    h.set_defaults(func=_rehearsal)

    e = sub.add_parser("evaluate", help="evaluate a saved model on every clip of a folder")
    e.add_argument("--model", required=True, help="run directory")
    e.add_argument("--data", required=True, help="folder in the one-folder-per-label layout")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(func=_evaluate)

    from ml.export.formats import FORMATS

    x = sub.add_parser("export", help="(re)write a run's served graph, model.tflite (also: --format "
                                      "litert without --out), or export it (--format, --out) to run elsewhere",
                       epilog="formats: " + "; ".join(f"{f.name}: {f.about}" for f in FORMATS.values()))
    x.add_argument("--model", required=True, help="run directory")
    x.add_argument("--unknown-weight", type=float,
                   help="weight of _unknown_ in the served probabilities (default: the run's)")
    x.add_argument("--format", choices=[*FORMATS, "litert"],
                   help="export the served model in this format (litert: rewrite the run's own model.tflite)")
    x.add_argument("--out", help="the file to write (with --format)")
    x.add_argument("--data", help="where the run's training data is (default: its config.json's); "
                                  "tflite-int8 calibrates on its training clips")
    x.add_argument("--eval", action="append", default=[], metavar="DIR",
                   help="also measure accuracy on this folder of clips, e.g. real speech "
                        "(tflite-int8: float beside int8; bundle: in the model card); repeatable")
    x.add_argument("--evaluation", action="append", default=[], metavar="JSON",
                   help="bundle: quote an evaluation measured before (a JSON record with folder "
                        "and report, as the web app stores them) in the model card; repeatable")
    x.set_defaults(func=_export)

    r = sub.add_parser("predict", help="classify audio files")
    r.add_argument("--model", required=True, help="run directory")
    r.add_argument("files", nargs="+", metavar="FILE")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=_predict)

    k = sub.add_parser("detect", help="find every command in long recordings, with its time",
                       description="Slides one-second windows over each file and prints each "
                                   "command heard: its label, the centre of the word (s) and "
                                   "its confidence. Settings: the run's config.json 'detector' "
                                   "section over the defaults of ml/detect.py.")
    k.add_argument("--model", required=True, help="run directory")
    k.add_argument("files", nargs="+", metavar="FILE")
    k.add_argument("--json", action="store_true",
                   help="print a JSON list, one {file, duration_s, detections} per file "
                        "({file, error} for one that could not be read)")
    k.add_argument("--max-seconds", type=float, default=3600.0,
                   help="refuse longer files (default: 3600)")
    k.add_argument("--sensitivity", choices=SENSITIVITIES, default=DEFAULT_SENSITIVITY,
                   help="more hears more commands and fires more often on talk, music and noise "
                        "(the run's presets, chosen on a measured curve: see its model card; "
                        "default medium)")
    k.add_argument("--threshold", type=float, metavar="X",
                   help="experts: the smoothed probability a command must reach, in (0, 1] "
                        "(over the preset's and every per-label threshold)")
    k.set_defaults(func=_detect)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return args.func(args) or 0
    except ValueError as exc:  # DataError, AudioError, RunError: a message for the user
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
