"""What activating a model version changes, said before it happens.

"Serve X from now on?" let an admin swap a 93% model for a 26% one that had
lost its silence and not-a-command classes. `change()` sets the candidate next
to the active version: accuracy on every measure both were measured on (the
same test split, real speech, the same folder; webapp/versions/accuracy.py),
the labels it gains and loses, and whether the swap needs a clear, explicit
confirmation (it is worse on a shared measure, or drops labels, or the two
share no measure and its own test accuracy is lower).
"""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from webapp.database import db
from webapp.labels import display_name
from webapp.tables import ModelVersion, TrainingJob
from webapp.versions import accuracy, registry

WORSE_BY = 0.0005            # below this (0.05 points) two accuracies count as equal


def active_version() -> ModelVersion | None:
    """The version the pointer names now (by the table's flag, else by its run directory)."""
    version = db.session.scalar(select(ModelVersion).where(ModelVersion.active.is_(True)))
    if version is None:
        run_dir = registry.active_run_dir()
        version = registry.find(run_dir) if run_dir else None
    return version


def change(candidate: ModelVersion, active: ModelVersion | None = None) -> dict:
    """{comparisons, only_new, labels_gained, labels_lost, warnings, risky} for the swap."""
    active = active if active is not None else active_version()
    new = accuracy.measures(candidate.run_dir)
    old = accuracy.measures(active.run_dir) if active is not None else []
    old_by_key = {m["key"]: m for m in old}
    comparisons = [{"on": m["on"], "kind": m["kind"], "n": m["n"], "before": old_by_key[m["key"]]["accuracy"],
                    "after": m["accuracy"], "delta": m["accuracy"] - old_by_key[m["key"]]["accuracy"]}
                   for m in new if m["key"] in old_by_key]
    labels_new, labels_old = list(candidate.labels or []), list(active.labels or []) if active else []
    gained = [display_name(label) for label in labels_new if label not in labels_old]
    lost = [display_name(label) for label in labels_old if label not in labels_new]
    warnings = []
    if active is not None and Path(active.run_dir).resolve() == Path(candidate.run_dir).resolve():
        warnings.append("It is already the active model.")
    for c in comparisons:
        if c["delta"] < -WORSE_BY:
            warnings.append(f"It is worse on {c['on']}: {c['after'] * 100:.1f}% against "
                            f"{c['before'] * 100:.1f}% now ({c['delta'] * 100:+.1f} points).")
    if lost:
        warnings.append(f"It does not know {', '.join(lost)}: clips the active model labels "
                        f"so would get another label.")
    test_new = next((m for m in new if m["kind"] == "test"), None)
    test_old = next((m for m in old if m["kind"] == "test"), None)
    if active is not None and not comparisons and test_new and test_old \
            and test_new["accuracy"] < test_old["accuracy"] - WORSE_BY:
        warnings.append(f"The two were never measured on the same clips, and its own test accuracy "
                        f"is lower: {accuracy.text(test_new)}, against {accuracy.text(test_old)} "
                        f"for the active model.")
    guard = _guard_verdict(candidate, active)
    if guard is not None and not guard["ok"]:
        warnings.append("The check before activation found it worse than the active model: "
                        + "; ".join(guard["reasons"]) + ".")
    return {
        "active": active.name if active is not None else None,
        "guard": guard,
        "comparisons": comparisons,
        "only_new": [m for m in new if m["key"] not in old_by_key],
        "labels": [display_name(label) for label in labels_new],
        "labels_gained": gained, "labels_lost": lost,
        "warnings": warnings, "risky": bool(warnings),
    }


def _guard_verdict(candidate: ModelVersion, active: ModelVersion | None) -> dict | None:
    """The activation guard's verdict on the candidate (ml/guard.py, stored by its job), where
    it was measured against the version active now."""
    if candidate.job_id is None or active is None:
        return None
    job = db.session.get(TrainingJob, candidate.job_id)
    guard = ((job.metrics or {}).get("activation") or {}).get("guard") if job is not None else None
    return guard if guard and guard.get("active_version") == active.name else None
