"""What a model version's accuracy was measured on, said with every figure.

A test-split accuracy describes the model on clips like those it was trained on:
for the shipped default those are synthetic voices, and real people are heard
less well. So every page that shows a version's accuracy takes its figures from
`measures(run_dir)`, each labelled with what it was measured on:

- the run's own test split (metrics.json), named after its data set;
- the real-speech evaluation a run may carry in `real_speech.json`
  (written by bench/real_speech_card.py: the `python -m ml evaluate --json`
  reports of ../shared/speech/words and extra, and how they were measured);
- the gallery's stored evaluations of the version on other folders.

`key` names the clips a figure was measured on, so two versions are compared
only on the same measure (webapp/admin/activation.py).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from flask import url_for

from webapp.security import privacy
from webapp.settings import ROOT
from webapp.versions import evaluations
from webapp.versions.evaluations import list_evaluations
from webapp.versions.run_files import read_cached

REAL_SPEECH_FILE = "real_speech.json"
DATASET_NAMES = {"default": "the synthetic test split",
                 "mini_speech_commands": "the test split of mini Speech Commands"}


def _figure(kind: str, on: str, report: dict | None, key: str, url: str | None = None,
            note: str | None = None) -> dict | None:
    if not isinstance(report, dict) or not isinstance(report.get("accuracy"), (int, float)):
        return None
    return {"kind": kind, "on": on, "accuracy": float(report["accuracy"]), "n": report.get("n"),
            "key": key, "url": url, "note": note}


SET_NAMES = {"default": "the synthetic set", "mini_speech_commands": "mini Speech Commands"}


def test_split_name(config: dict) -> str:
    """How people read a run's test split: synthetic, mini Speech Commands, a named folder, or
    several of them (a run trained on more than one data set)."""
    datasets = config.get("datasets")
    if isinstance(datasets, list) and len(datasets) > 1 and all(isinstance(d, dict) for d in datasets):
        names = [Path(str(d.get("path") or "?")).name for d in datasets]
        sets = [SET_NAMES.get(n, f"folder {n}") for n in names]
        return "the test split of " + ", ".join(sets[:-1]) + " and " + sets[-1]
    name = Path(str(config.get("data") or "")).name
    if name in DATASET_NAMES:
        return DATASET_NAMES[name]
    return f"the test split of folder {name}" if name else "its test split"


def _test_split(run_dir: Path, config: dict) -> dict | None:
    report = read_cached(run_dir / "metrics.json")
    key = f"test:{config.get('data_hash') or config.get('data')}:{config.get('split')}:{config.get('seed')}"
    return _figure("test", test_split_name(config), report, key,
                   url=url_for("gallery.index", source=f"run:{run_dir.name}"))


def real_speech(run_dir: Path) -> list[dict]:
    """The figures of the run's real_speech.json, one per evaluated folder."""
    card = read_cached(Path(run_dir) / REAL_SPEECH_FILE)
    if not isinstance(card, dict) or not isinstance(card.get("sets"), list):
        return []
    out = []
    for entry in card["sets"]:
        if not isinstance(entry, dict):
            continue
        name = str(entry.get("name") or "?")
        title = str(entry.get("title") or f"folder {name}")
        speakers = entry.get("speakers")
        note = f"{speakers:,} speakers" if isinstance(speakers, int) else None
        figure = _figure("real", f"real speech: {title}", entry.get("report"), f"real:{name}",
                         note=note)
        if figure is not None:
            out.append(figure)
    return out


def _evaluations(run_dir: Path, skip_folders: set[str]) -> list[dict]:
    """The gallery's stored evaluations of this run, newest first, one per folder (those on
    private clips for the admin only; a folder is named, never given as a server path)."""
    out, seen = [], set(skip_folders)
    for path in list_evaluations(evaluations.folder()):
        record = read_cached(path)
        if not isinstance(record, dict) or not record.get("model_dir"):
            continue
        try:
            same = Path(record["model_dir"]).resolve() == run_dir
        except OSError:
            continue
        folder = str(record.get("folder", ""))
        if not same or folder in seen or not privacy.may_hear([folder]):
            continue
        seen.add(folder)
        where = privacy.shown_folder(folder)
        key = hashlib.sha1(folder.encode()).hexdigest()[:16]
        figure = _figure("folder", f"folder {where}", record.get("report"), f"folder:{key}",
                         url=url_for("gallery.index", source=f"eval:{path.stem}"))
        if figure is not None:
            out.append(figure)
    return out


def measures(run_dir: str | Path | None) -> list[dict]:
    """Every accuracy known for a run: the test split first, then real speech, then folders."""
    if run_dir is None:
        return []
    run_dir = Path(run_dir).resolve()
    config = read_cached(run_dir / "config.json") or {}
    out = [f for f in [_test_split(run_dir, config)] if f]
    real = real_speech(run_dir)
    out += real
    card = read_cached(run_dir / REAL_SPEECH_FILE) or {}
    measured = {str((ROOT / s["folder"]).resolve()) for s in card.get("sets", [])
                if isinstance(s, dict) and isinstance(s.get("folder"), str)
                and s.get("half") is None} if real else set()   # half a folder is not the folder
    out += _evaluations(run_dir, measured)
    return out


def text(figure: dict) -> str:
    """"93.4% on the synthetic test split (1,414 clips)"."""
    n = f" ({figure['n']:,} clips)" if isinstance(figure.get("n"), int) else ""
    return f"{figure['accuracy'] * 100:.1f}% on {figure['on']}{n}"
