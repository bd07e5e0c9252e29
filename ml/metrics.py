"""Accuracy, per-class precision/recall/F1 and the confusion matrix, from label indices."""
from __future__ import annotations

import numpy as np


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict:
    """Figures for a set of predictions; rows of `confusion` are true labels."""
    n = len(labels)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    per_class = {}
    for i, label in enumerate(labels):
        tp = int(confusion[i, i])
        predicted, support = int(confusion[:, i].sum()), int(confusion[i].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": round(precision, 4), "recall": round(recall, 4),
                            "f1": round(f1, 4), "support": support}
    total = int(confusion.sum())
    return {
        "accuracy": round(float(np.trace(confusion)) / total, 4) if total else 0.0,
        "n": total,
        "labels": list(labels),
        "per_class": per_class,
        "confusion": confusion.tolist(),
    }


def format_report(report: dict) -> str:
    """The report as a terminal table."""
    labels = report["labels"]
    width = max(9, *(len(label) for label in labels))
    lines = [f"accuracy {report['accuracy']:.2%} on {report['n']} clips", "",
             f"{'label':<{width}} precision recall     f1 support"]
    for label in labels:
        c = report["per_class"][label]
        lines.append(f"{label:<{width}} {c['precision']:9.3f} {c['recall']:6.3f} "
                     f"{c['f1']:6.3f} {c['support']:7d}")
    lines += ["", "confusion (rows: true, columns: predicted)",
              " " * width + " " + " ".join(f"{label[:6]:>6}" for label in labels)]
    for label, row in zip(labels, report["confusion"]):
        lines.append(f"{label:<{width}} " + " ".join(f"{v:6d}" for v in row))
    return "\n".join(lines)
