"""What the gallery shows: model versions and stored evaluations ("sources"), their clips,
filtered, sorted and paginated, and where a clip's audio lives on this machine.

A source is addressed by a key like `run:20261124-110955-kws` or `eval:<id>` that must
match one listed here; clips are addressed by their index in the source's rows. No path
from a request is ever opened: audio paths come from the run's own predictions and data
folder, and are checked to stay inside that folder.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from flask import current_app

from ml.dataset import AUDIO_SUFFIXES
from webapp.errors import ApiError
from webapp.labels import display_name
from webapp.security import privacy
from webapp.settings import ROOT
from webapp.versions import evaluations
from webapp.versions.evaluations import ID as EVAL_ID
from webapp.versions.evaluations import list_evaluations
from webapp.versions.run_files import read_cached

PER_PAGE, MAX_PER_PAGE = 48, 200
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")   # one plain folder name (fullmatch)
SORTS = ("index", "confidence", "-confidence")
REGENERATE = {"default": "python -m ml data default",
              "mini_speech_commands": "python -m ml data download"}
REAL_HALF = re.compile(r"real-half([01])")


def regenerate_command(folder: Path) -> str | None:
    """The command that makes a missing data folder again (None where none can): the default
    set and mini Speech Commands by name; a half of the real speakers from ../shared/speech
    (recordings not shipped with Hark), as the README's recipe links them."""
    half = REAL_HALF.fullmatch(folder.name)
    if half:
        return (f"python -m ml data speakers ../shared/speech/words ../shared/speech/extra "
                f"--half {half.group(1)} --repeat 3 --dest {_shown(folder)} (real speakers' "
                f"recordings, not shipped: it needs ../shared/speech beside the checkout)")
    return REGENERATE.get(folder.name)


def _shown(folder: Path) -> str:
    """A folder as pages name it: relative to the checkout when inside it."""
    folder = Path(folder)
    return str(folder.relative_to(ROOT)) if folder.is_relative_to(ROOT) else folder.name


@dataclass(frozen=True)
class Source:
    """One browsable set of predictions: a run's test split or a stored evaluation."""
    key: str                    # "run:<id>" | "eval:<id>"
    kind: str                   # "run" | "evaluation"
    id: str
    title: str
    file: Path                  # predictions.json, or the evaluation's JSON
    model_dir: Path | None      # the run that made the predictions
    data: str                   # the data folder as recorded ("data/default", "/abs/folder")
    active: bool = False
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def data_root(self) -> Path:
        path = Path(self.data).expanduser()
        return path if path.is_absolute() else ROOT / path

    def folders(self) -> list[Path]:
        """The data folders the clips come from: a run's data sets (its config.json's
        `datasets`), else the one folder recorded."""
        if self.kind == "run" and self.model_dir is not None:
            try:
                config = read_cached(self.model_dir / "config.json")
            except (OSError, ValueError):
                config = {}
            paths = [d["path"] for d in config.get("datasets") or [] if isinstance(d, dict) and d.get("path")]
            if len(paths) > 1:
                return [Path(p) if Path(p).is_absolute() else ROOT / p for p in paths]
        return [self.data_root]

    def audio_status(self) -> dict:
        """{available, partial, message, command}: whether this machine holds the clips (all of
        their folders, or some: each card then says whether its own clip is here), and, for
        each folder missing, what it is and the command that makes it."""
        if not self.data:
            return {"available": False, "partial": False, "command": None,
                    "message": "The audio of these clips is not on this machine (no data folder recorded)."}
        missing = [f for f in self.folders() if not f.is_dir()]
        if not missing:
            return {"available": True, "partial": False, "message": "", "command": None}
        commands = [c for c in (regenerate_command(f) for f in missing) if c]
        names = " and ".join(_shown(f) for f in missing)
        return {"available": False, "partial": self.data_root.is_dir(),
                "message": f"The audio of the clips in {names} is not on this machine.",
                "command": "; ".join(commands) or None}

    @property
    def shown_data(self) -> str:
        """The data folder as pages name it (never the server's path)."""
        return privacy.shown_folder(self.data) if self.data else ""

    def audible(self) -> bool:
        """May this visitor list, hear and see the clips (webapp/security/privacy.py)?"""
        return privacy.may_hear(self.folders() if self.data else [""])

    def missing_audio_error(self) -> str:
        status = self.audio_status()
        command = status.get("command")
        return status["message"] + (f" Regenerate it with: {command}" if command else "")


# ---- listing sources ------------------------------------------------------------------

def runs_folder() -> Path:
    return Path(current_app.config.get("HARK_RUNS") or ROOT / "runs")


def default_model_dir() -> Path:
    return Path(current_app.config.get("HARK_DEFAULT_MODEL") or ROOT / "models" / "default")


def instance_folder() -> Path:
    return Path(current_app.config.get("HARK_INSTANCE") or current_app.instance_path)


def evaluations_folder() -> Path:
    """Where stored evaluations live (one JSON file each)."""
    return evaluations.folder()


def cache_folder() -> Path:
    """Thumbnails and measured latencies: derived files, safe to delete."""
    return instance_folder() / "cache"


def active_run_dir() -> Path | None:
    classifier = current_app.extensions["hark.models"].peek()
    return Path(classifier.run_dir) if classifier is not None else None


def _run_source(run_dir: Path, active: bool) -> Source | None:
    if not (run_dir / "predictions.json").is_file() or not (run_dir / "labels.json").is_file():
        return None
    config = read_cached(run_dir / "config.json") or {}
    created = str(config.get("created", ""))[:16].replace("T", " ")
    run_id = config.get("run_id") or run_dir.name      # models/default keeps its run's id
    name = run_dir.name if run_id == run_dir.name else f"{run_dir.name} ({run_id})"
    title = name + (" (active)" if active else "") + (f" · {created}" if created else "")
    return Source(key=f"run:{run_dir.name}", kind="run", id=run_dir.name, title=title,
                  file=run_dir / "predictions.json", model_dir=run_dir,
                  data=str(config.get("data", "")), active=active,
                  extra={"config": config})


def _evaluation_source(path: Path) -> Source | None:
    record = read_cached(path)
    if not isinstance(record, dict) or "rows" not in record:
        return None
    created = str(record.get("created", ""))[:16].replace("T", " ")
    folder = Path(record.get("folder", "")).name or record.get("folder", "")
    return Source(key=f"eval:{path.stem}", kind="evaluation", id=path.stem,
                  title=f"{folder} · model {record.get('model', '?')} · {created}",
                  file=path, model_dir=Path(record["model_dir"]) if record.get("model_dir") else None,
                  data=str(record.get("folder", "")), extra={"record": record})


def list_sources() -> list[Source]:
    """The active model first, then models/default, runs newest first, then evaluations."""
    active = active_run_dir()
    candidates: list[tuple[Path, bool]] = []
    if active is not None:
        candidates.append((active, True))
    candidates.append((default_model_dir(), False))
    runs = runs_folder()
    if runs.is_dir():
        candidates += [(p, False) for p in sorted(runs.iterdir(), reverse=True)
                       if p.is_dir() and not p.name.startswith(".")]
    sources, seen_paths, seen_keys = [], set(), set()
    for run_dir, is_active in candidates:
        try:
            resolved = run_dir.resolve()
        except OSError:
            continue
        if resolved in seen_paths or not SAFE_NAME.fullmatch(run_dir.name):
            continue
        source = _run_source(run_dir, is_active)
        if source is None or source.key in seen_keys:
            continue
        seen_paths.add(resolved)
        seen_keys.add(source.key)
        sources.append(source)
    for path in list_evaluations(evaluations_folder()):
        source = _evaluation_source(path)
        if source is not None and source.audible():    # one on private clips is the admin's
            sources.append(source)
    return sources


def _find(key: str) -> Source | None:
    """The source `key` names, found without listing every run (each clip request calls this).

    Only names that list_sources() would also show are found: the active run, the
    default model, a plain folder name inside the runs folder, a stored evaluation.
    """
    kind, _, ident = key.partition(":")
    if kind == "eval":
        path = evaluations_folder() / f"{ident}.json"
        source = _evaluation_source(path) if EVAL_ID.fullmatch(ident) and path.is_file() else None
        return source if source is not None and source.audible() else None
    if kind != "run" or not SAFE_NAME.fullmatch(ident):
        return None
    active = active_run_dir()
    if active is not None and active.name == ident:
        return _run_source(active, True)
    default = default_model_dir()
    source = _run_source(default, False) if default.name == ident else None
    if source is not None:
        return source
    run_dir = runs_folder() / ident
    if not run_dir.is_dir():
        return None
    if active is not None and run_dir.resolve() == active.resolve():
        return None            # listed under the active model's own name
    return _run_source(run_dir, False)


def get_source(key: str | None) -> Source:
    """The source named by `key` (the active model's when empty); 404 if it is not listed."""
    if key:
        source = _find(key)
        if source is None:
            raise ApiError(404, f"no such model version or evaluation: {key}")
        return source
    sources = list_sources()
    if not sources:
        raise ApiError(404, "there are no test results yet: train a model first")
    return sources[0]


# ---- what a source holds ----------------------------------------------------------------

def rows_of(source: Source) -> list[dict]:
    if source.kind == "evaluation":
        return source.extra["record"]["rows"]
    rows = read_cached(source.file)
    if not isinstance(rows, list):
        raise ApiError(500, f"{source.id}: predictions.json cannot be read")
    return rows


def report_of(source: Source) -> dict | None:
    if source.kind == "evaluation":
        return source.extra["record"].get("report")
    assert source.model_dir is not None     # a run's source is made with its run directory
    return read_cached(source.model_dir / "metrics.json")


def history_of(source: Source) -> list[dict]:
    if source.kind != "run":
        return []
    assert source.model_dir is not None     # a run's source is made with its run directory
    history = read_cached(source.model_dir / "history.json")
    return history if isinstance(history, list) else []


def labels_of(source: Source, rows: list[dict]) -> list[str]:
    """The model's labels in output order, or those seen in the rows."""
    report = report_of(source)
    if report and report.get("labels"):
        return list(report["labels"])
    return sorted({r["true"] for r in rows} | {r["pred"] for r in rows})


def check_audible(source: Source) -> None:
    """401 unless this visitor may list and hear the source's clips (a model trained on a
    private data set shows anyone its figures, never its clips)."""
    if not source.audible():
        raise ApiError(401, f"the clips of {source.id} come from a data set that is not public: "
                            "log in as the admin to see and hear them")


def clip_path(source: Source, index: int, rows: list[dict] | None = None) -> Path:
    """The audio file of clip `index`, only ever inside the source's own data folder, for a
    visitor who may hear it."""
    check_audible(source)
    rows = rows_of(source) if rows is None else rows
    if not 0 <= index < len(rows):
        raise ApiError(404, f"no clip {index} in {source.key}")
    status = source.audio_status()
    if not (status["available"] or status["partial"]):
        raise ApiError(404, source.missing_audio_error())
    root = source.data_root.resolve()
    relative = str(rows[index].get("path", ""))
    path = (root / relative).resolve()
    if not path.is_relative_to(root) or path == root or path.suffix.lower() not in AUDIO_SUFFIXES:
        raise ApiError(404, f"clip {index} of {source.key} has no audio file in its data folder")
    if not path.is_file():
        raise ApiError(404, f"the audio of clip {index} ({relative}) is not on this machine")
    return path


# ---- filtering ---------------------------------------------------------------------------

@dataclass
class Filters:
    true: str | None = None
    pred: str | None = None
    errors: bool = False
    min: float = 0.0
    max: float = 1.0
    sort: str = "index"
    page: int = 1
    per_page: int = PER_PAGE

    def as_args(self) -> dict:
        """The non-default filters, as query arguments."""
        out = {}
        for name, default in (("true", None), ("pred", None), ("errors", False), ("min", 0.0),
                              ("max", 1.0), ("sort", "index")):
            value = getattr(self, name)
            if value != default:
                out[name] = "1" if value is True else value
        return out


def _number(args, name: str, default: float, low: float, high: float) -> float:
    raw = args.get(name, "")
    if raw in ("", None):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be a number between {low:g} and {high:g}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise ApiError(400, f"{name} must be a number between {low:g} and {high:g}")
    return value


def parse_filters(args, labels: list[str]) -> Filters:
    """Filters from query arguments; a clear 400 for anything that makes no sense."""
    f = Filters()
    for name in ("true", "pred"):
        value = args.get(name) or None
        if value is not None and value not in labels:
            raise ApiError(400, f"unknown label {value!r} for {name} "
                                f"(this set has {', '.join(labels)})")
        setattr(f, name, value)
    f.errors = args.get("errors", "") in ("1", "true", "yes", "on")
    f.min = _number(args, "min", 0.0, 0.0, 1.0)
    f.max = _number(args, "max", 1.0, 0.0, 1.0)
    if f.min > f.max:
        raise ApiError(400, "min must not be above max")
    f.sort = args.get("sort") or "index"
    if f.sort not in SORTS:
        raise ApiError(400, f"sort must be one of {', '.join(SORTS)}")
    f.page = int(_number(args, "page", 1, 1, 1e9))
    f.per_page = int(_number(args, "per_page", PER_PAGE, 1, MAX_PER_PAGE))
    return f


def select(rows: list[dict], f: Filters) -> list[int]:
    """Indices of the rows that pass the filters, in the requested order."""
    picked = [i for i, r in enumerate(rows)
              if (f.true is None or r["true"] == f.true)
              and (f.pred is None or r["pred"] == f.pred)
              and (not f.errors or r["true"] != r["pred"])
              and f.min <= r["confidence"] <= f.max]
    if f.sort != "index":
        picked.sort(key=lambda i: rows[i]["confidence"], reverse=f.sort.startswith("-"))
    return picked


def paginate(indices: list[int], page: int, per_page: int) -> tuple[list[int], int, int]:
    """(the page's indices, the page actually shown, number of pages)."""
    pages = max(1, math.ceil(len(indices) / per_page))
    page = min(max(1, page), pages)
    return indices[(page - 1) * per_page: page * per_page], page, pages


def card(source: Source, index: int, row: dict, audio_root: str | None, urls) -> dict:
    """One card as JSON: labels for people, whether audio is here, and the clip's URLs."""
    has_audio = False
    if audio_root is not None:
        path = os.path.normpath(os.path.join(audio_root, row.get("path", "")))
        has_audio = path.startswith(str(audio_root) + os.sep) and os.path.isfile(path)
    item = {"id": index, "path": row.get("path", ""), "true": row["true"], "pred": row["pred"],
            "true_name": display_name(row["true"]), "pred_name": display_name(row["pred"]),
            "confidence": row["confidence"], "correct": row["true"] == row["pred"],
            "audio": has_audio, "analyze_url": urls(source, index, "analyze")}
    if has_audio:
        item["audio_url"] = urls(source, index, "audio")
        item["thumbnail_url"] = urls(source, index, "thumbnail")
    return item
