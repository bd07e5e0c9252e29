"""Evaluating a served model (a Classifier) on arrays or on a whole data folder.

Evaluation runs the same LiteRT graphs the web app serves, so the figures
are those of the model users get.
"""
from __future__ import annotations

from pathlib import Path

from ml import dataset, runs
from ml.classifier import Classifier
from ml.metrics import classification_report


def evaluate_arrays(clf: Classifier, x, y, clips, root) -> tuple[dict, list[dict]]:
    """The report and one prediction row per clip (path relative to `root`)."""
    labels = clf.labels
    probs = clf.predict_batch(x)
    pred = probs.argmax(axis=1)
    report = classification_report(y, pred, labels)
    rows = [{"path": str(c.path.relative_to(root)), "true": labels[t], "pred": labels[p],
             "confidence": round(float(pr[p]), 4),
             "probabilities": {label: round(float(v), 4) for label, v in zip(labels, pr)}}
            for c, t, p, pr in zip(clips, y, pred, probs)]
    return report, rows


def evaluate_folder(clf: Classifier, data: Path, log=None) -> tuple[dict, list[dict]]:
    """Evaluate on every clip of a folder whose labels are a subset of the model's."""
    data = Path(data)
    labels, clips = dataset.list_clips(data)
    unknown = [label for label in labels if label not in clf.labels]
    if unknown:
        raise dataset.DataError(
            f"{data}: label(s) {', '.join(unknown)} unknown to the model "
            f"(it knows {', '.join(clf.labels)})")
    x, y, kept = dataset.load_arrays(clips, clf.labels, log)
    return evaluate_arrays(clf, x, y, kept, data)


def evaluate_test_split(run_dir: Path, root: Path | None = None, log=None) -> dict:
    """Evaluate a run's served graphs on its own test split; write metrics and predictions."""
    run_dir = Path(run_dir)
    config = runs.read_json(run_dir / "config.json")
    root = Path(root or config["data"])
    clf = Classifier(run_dir)
    clips = [dataset.Clip(root / path, Path(path).parent.name)
             for path in runs.read_json(run_dir / "split.json")["test"]]
    missing = [c for c in clips if not c.path.is_file()]
    if missing:
        raise dataset.DataError(f"{root}: {len(missing)} test clips of this run are missing "
                                f"(e.g. {missing[0].path.name}); is this the data it was trained on?")
    x, y, kept = dataset.load_arrays(clips, clf.labels, log)
    report, rows = evaluate_arrays(clf, x, y, kept, root)
    runs.write_json(run_dir / "metrics.json", report)
    runs.write_json(run_dir / "predictions.json", rows)
    return report
