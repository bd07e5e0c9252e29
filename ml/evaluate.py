"""Evaluating a model on arrays or on a whole data folder."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ml import dataset
from ml.metrics import classification_report


def predict_probabilities(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Class probabilities for a stack of one-second waveforms, batch by batch."""
    if len(x) == 0:
        return np.zeros((0, model.output_shape[-1]), np.float32)
    return np.concatenate([np.asarray(model(x[i:i + batch_size], training=False))
                           for i in range(0, len(x), batch_size)])


def evaluate_arrays(model, x, y, clips, labels, root) -> tuple[dict, list[dict]]:
    """The report and one prediction row per clip (path relative to `root`)."""
    probs = predict_probabilities(model, x)
    pred = probs.argmax(axis=1) if len(probs) else np.zeros(0, np.int64)
    report = classification_report(y, pred, labels)
    rows = [{"path": str(c.path.relative_to(root)), "true": labels[t], "pred": labels[p],
             "confidence": round(float(pr[p]), 4),
             "probabilities": {label: round(float(v), 4) for label, v in zip(labels, pr)}}
            for c, t, p, pr in zip(clips, y, pred, probs)]
    return report, rows


def evaluate_folder(model, model_labels: list[str], data: Path, log=None) -> tuple[dict, list[dict]]:
    """Evaluate on every clip of a folder whose labels are a subset of the model's."""
    data = Path(data)
    labels, clips = dataset.list_clips(data)
    unknown = [label for label in labels if label not in model_labels]
    if unknown:
        raise dataset.DataError(
            f"{data}: label(s) {', '.join(unknown)} unknown to the model "
            f"(it knows {', '.join(model_labels)})")
    x, y, kept = dataset.load_arrays(clips, model_labels, log)
    return evaluate_arrays(model, x, y, kept, model_labels, data)
