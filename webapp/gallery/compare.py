"""Two model versions side by side: do they share a test set, and where do they disagree.

Clips are matched by their path in the data folder, and only when both sources
used the same data (the same folder, or the same content hash for runs), so a
"disagreement" is always the same audio heard two ways.
"""
from __future__ import annotations

from webapp.gallery.data import Source, report_of, rows_of

WHICH = ("all", "a_right", "b_right", "both_wrong")


def _data_hash(source: Source) -> str | None:
    return (source.extra.get("config") or {}).get("data_hash") if source.kind == "run" else None


def test_sets(a: Source, b: Source) -> dict:
    """How the two test sets relate: {kind, message, common, n_a, n_b, same_data}."""
    rows_a, rows_b = rows_of(a), rows_of(b)
    hash_a, hash_b = _data_hash(a), _data_hash(b)
    same_folder = a.data_root.resolve() == b.data_root.resolve()
    same_hash = bool(hash_a) and hash_a == hash_b
    hashes_differ = bool(hash_a) and bool(hash_b) and hash_a != hash_b
    paths_a = {r["path"] for r in rows_a}
    paths_b = {r["path"] for r in rows_b}
    common = len(paths_a & paths_b) if (same_folder or same_hash) else 0
    n_a, n_b = len(rows_a), len(rows_b)
    if common and paths_a == paths_b and not hashes_differ:
        kind, message = "same", f"Both were tested on the same {n_a} clips."
    elif common:
        kind = "partial"
        message = (f"They do not share one test set: A has {n_a} clips, B has {n_b}; "
                   f"the {common} clips in both are compared below.")
        if hashes_differ:
            message += (" The data folder changed between the two runs (its content hash differs), "
                        "so a clip with the same name may not be the same audio.")
    else:
        kind = "none"
        message = (f"They do not share a test set (A: {n_a} clips from {a.shown_data or '?'}, "
                   f"B: {n_b} clips from {b.shown_data or '?'}), so only their figures can be compared, "
                   "not their clips.")
    return {"kind": kind, "message": message, "common": common, "n_a": n_a, "n_b": n_b}


def disagreements(a: Source, b: Source, which: str = "all") -> list[tuple[int, int]]:
    """(index in A, index in B) of shared clips the two label differently, in A's order."""
    relation = test_sets(a, b)
    if not relation["common"]:
        return []
    rows_a, rows_b = rows_of(a), rows_of(b)
    index_b = {r["path"]: i for i, r in enumerate(rows_b)}
    out = []
    for i, ra in enumerate(rows_a):
        j = index_b.get(ra["path"])
        if j is None or ra["pred"] == rows_b[j]["pred"]:
            continue
        rb = rows_b[j]
        a_right, b_right = ra["pred"] == ra["true"], rb["pred"] == rb["true"]
        if (which == "all" or (which == "a_right" and a_right) or (which == "b_right" and b_right)
                or (which == "both_wrong" and not a_right and not b_right)):
            out.append((i, j))
    return out


def summary(source: Source) -> dict:
    """Accuracy and size of a source, for the compare page's heading."""
    report = report_of(source) or {}
    config = source.extra.get("config") or {}
    return {"key": source.key, "title": source.title, "kind": source.kind,
            "accuracy": report.get("accuracy"), "n": report.get("n"),
            "arch": config.get("arch"), "parameters": config.get("parameters"),
            "data": source.shown_data}
