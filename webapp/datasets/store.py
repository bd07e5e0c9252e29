"""Data sets on disk: the built-in ones, and the admin's own under `<HARK_DATA>/user/<name>/`.

A user data set is in the Speech Commands layout training reads (`<label>/<file>.wav`)
with a `manifest.csv` beside the label folders (file, label, speaker, source, created).
Every clip is stored as what training reads best: 16 kHz mono 16-bit WAV of exactly one
second, the loudest second of what was sent (ml.audio.fit_clip, as serving cuts it).
Names are made here, never taken from a client: `<speaker id>_nohash_<n>.wav`, the
speaker id 8 hex digits (ml.dataset.speaker_of) so splits by speaker keep working; a file
is linked into place only under a name that does not exist yet, so nothing is ever
overwritten, and a batch is converted whole before any of it is written, so a bad
file stores nothing; a batch that fails or is killed part-way is rolled back (see add).
Writers of one data set take turns (a lock file in it). Hidden entries are bookkeeping:
`.lock`, `.index/` (counts and free names per label, so an add costs the same however
many clips are stored) and `.adding-*/` (a batch on its way in).
No Flask here: plain functions of paths and bytes.
"""
from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import stat
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from ml.audio import SAMPLE_RATE, AudioError, decode, fit_clip, sniff, to_model_rate
from ml.config import SILENCE, UNKNOWN
from ml.dataset import AUDIO_SUFFIXES, about, speaker_of
from ml.synth.words import COMMANDS
from webapp.instance import file_lock

USER_FOLDER = "user"
MANIFEST = "manifest.csv"
MANIFEST_FIELDS = ("file", "label", "speaker", "source", "created")
INFO, PUBLIC = "dataset.json", "public"   # the set's own facts; "public": true lets anyone hear it
LOCK = ".lock"
INDEX = ".index"             # per label: its clips and each speaker's next number (adds stay O(batch))
STAGING = ".adding-"         # a batch on its way in; one left behind is rolled back
PLAN = "plan.json"           # in a staging folder: what the batch links and the manifest's size before
NUMBERED = re.compile(r"([0-9a-f]{8})_nohash_([0-9]+)\.", re.IGNORECASE)   # a speaker's n-th take
BUILT_IN = {"default": ("default", "Default synthetic set"),
            "mini": ("mini_speech_commands", "Mini Speech Commands")}
SUGGESTED_LABELS = (*COMMANDS, SILENCE)   # what a new data set offers to record
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")      # whole names only: fullmatch (`$` lets "x\n" in)
LABEL = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
SPEAKER_NAME_CHARS = 40
NAME_MAX = 255             # bytes in one file name on the file systems Hark runs on
CLIP_FILE = re.compile(r"[0-9a-f]{8}_nohash_[0-9]{1,9}\.wav")

MAX_CLIP_SECONDS = 10.0     # a recording or file holding one word (its loudest second is kept)
MIN_CLIP_SECONDS = 0.25
SILENT_PEAK = 0.01          # -40 dBFS: no word was said (a _silence_ clip may be this quiet)
MAX_LABELS, MAX_CLIPS = 100, 50_000          # per data set
MAX_BATCH = 1_000                            # clips added by one request
MAX_ZIP_ENTRY = 8 * 1024 * 1024              # bytes of one uncompressed ZIP member
MAX_ZIP_TOTAL = 256 * 1024 * 1024            # bytes of all members together
MAX_ZIP_RATIO = 100                          # uncompressed / compressed, past which it is a bomb
RATIO_FREE = 1024 * 1024                     # bytes a member, or the archive, may unpack to at any ratio
IGNORED_IN_ZIP = ("__MACOSX/",)


class DataSetError(ValueError):
    """A request about a data set that cannot be done; `status` is the HTTP answer."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class DataSet:
    key: str          # "default", "mini" or "user:<name>" (URLs, job parameters)
    title: str
    path: Path
    editable: bool    # only the admin's own sets take clips and deletions

    @property
    def kind(self) -> str:
        return "user" if self.editable else self.key


@dataclass(frozen=True)
class NewClip:
    """A clip converted and checked, not written yet."""
    label: str
    wave: np.ndarray  # int16, one second at 16 kHz
    speaker: str      # the person's name as given (the manifest keeps it)
    speaker_id: str   # 8 hex digits (the file name keeps it)
    source: str


# ---- finding data sets ---------------------------------------------------------------

def user_root(data_dir: Path) -> Path:
    return Path(data_dir) / USER_FOLDER


def list_sets(data_dir: Path) -> list[DataSet]:
    """The built-in sets that are on disk, then the user's own by name."""
    found = [built_in(data_dir, key) for key in BUILT_IN]
    found = [s for s in found if s.path.is_dir()]
    root = user_root(data_dir)
    if root.is_dir():
        found += [_user_set(root, p.name) for p in sorted(root.iterdir())
                  if p.is_dir() and NAME.fullmatch(p.name)]
    return found


def built_in(data_dir: Path, key: str) -> DataSet:
    folder, title = BUILT_IN[key]
    return DataSet(key, title, Path(data_dir) / folder, editable=False)


def _user_set(root: Path, name: str) -> DataSet:
    return DataSet(f"user:{name}", name, root / name, editable=True)


def get(data_dir: Path, key: str) -> DataSet:
    """The data set `key` names (a 404 DataSetError when there is none)."""
    if key in BUILT_IN:
        found = built_in(data_dir, key)
    else:
        kind, _, name = str(key).partition(":")
        if kind != "user" or not NAME.fullmatch(name):
            raise DataSetError(f"no data set {_shown(key)}", 404)
        found = _user_set(user_root(data_dir), name)
    if not found.path.is_dir():
        raise DataSetError(f"no data set {_shown(key)}", 404)
    return found


def _shown(text: str) -> str:
    """A client's text made safe and short for a message."""
    text = "".join(ch for ch in str(text) if ch.isprintable())
    return repr(text[:60] + ("…" if len(text) > 60 else ""))


def counts(ds: DataSet) -> dict[str, int]:
    """Clips per label folder (hidden entries and other files left out), labels sorted: from
    a label's index while its folder is unchanged since (no listing), else counted."""
    out = {}
    for label in _label_names(ds):
        folder = ds.path / label
        state = _read_state(ds, label, _stamp(folder)) if ds.editable else None
        out[label] = state["clips"] if state else _scan_label(folder)["clips"]
    return out


def summary(ds: DataSet) -> dict:
    """A data set as the admin API and pages show it: named by its key and its folder inside
    the data folder ("user/my-voice"), never by a server path."""
    labels = counts(ds)
    return {"key": ds.key, "title": ds.title, "kind": ds.kind, "editable": ds.editable,
            "folder": f"{USER_FOLDER}/{ds.path.name}" if ds.editable else ds.path.name,
            "public": is_public(ds), "clips": sum(labels.values()), "labels": labels}


# ---- who may hear a data set's clips ------------------------------------------------------
# Hark's own sets are public. A user set's recordings are private until the admin makes that
# set public: the switch is `"public": true` in the set's own dataset.json (stored with it,
# gone with it), and every route that serves its clips, thumbnails or lists asks is_public.

def is_public(ds: DataSet) -> bool:
    return not ds.editable or about(ds.path).get(PUBLIC) is True


def set_public(ds: DataSet, public) -> bool:
    """Make a user set's clips public or private again (dataset.json, replaced in one step)."""
    _editable(ds)
    if not isinstance(public, bool):
        raise DataSetError("public must be true or false")
    with _locked(ds):
        info = {**about(ds.path), PUBLIC: public}
        fd, tmp = tempfile.mkstemp(dir=ds.path, prefix=f".{INFO}.")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(info, f, indent=1)
        os.chmod(tmp, 0o644)
        os.replace(tmp, ds.path / INFO)
    return public


# ---- making and removing ---------------------------------------------------------------

def check_name(name) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise DataSetError("a data set's name is 1 to 40 lower-case letters, digits, '-' or '_', "
                           "starting with a letter or digit")
    return name


def check_label(label) -> str:
    if not isinstance(label, str) or not (label in (SILENCE, UNKNOWN) or LABEL.fullmatch(label)):
        raise DataSetError(f"a label is a word of 1 to 32 lower-case letters, digits, '-' or '_' "
                           f"(or {SILENCE} / {UNKNOWN}), not {_shown(label)}")
    return label


def create(data_dir: Path, name, labels=()) -> DataSet:
    """A new, empty user data set (409 when the name is taken), with `labels` as folders."""
    name = check_name(name)
    labels = list(dict.fromkeys(check_label(label) for label in labels))
    if len(labels) > MAX_LABELS:      # the same limit add_label keeps, checked before any folder is made
        raise DataSetError(f"a data set holds at most {MAX_LABELS} labels ({len(labels)} were given)", 413)
    root = user_root(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    try:
        (root / name).mkdir()
    except FileExistsError:
        raise DataSetError(f"there is already a data set named {name}", 409) from None
    ds = _user_set(root, name)
    with _locked(ds):
        _write_manifest(ds, [])
        for label in labels:
            (ds.path / label).mkdir(exist_ok=True)
    return ds


def add_label(ds: DataSet, label) -> str:
    _editable(ds)
    label = check_label(label)
    with _locked(ds):
        if (ds.path / label).is_dir():
            raise DataSetError(f"{ds.title} has a label {label} already", 409)
        if len(_label_names(ds)) >= MAX_LABELS:
            raise DataSetError(f"a data set holds at most {MAX_LABELS} labels", 413)
        (ds.path / label).mkdir()
    return label


def delete_set(ds: DataSet) -> None:
    _editable(ds)
    doomed = ds.path.with_name(f".deleted-{ds.path.name}-{os.getpid()}-{time.monotonic_ns()}")
    with _locked(ds):
        ds.path.rename(doomed)        # gone from every listing at once
    shutil.rmtree(doomed, ignore_errors=True)


def delete_clip(ds: DataSet, label: str, name: str) -> None:
    _editable(ds)
    path = clip_path(ds, label, name)
    with _locked(ds):
        _recover(ds)                 # before the manifest is rewritten: a killed batch goes first
        state = _label_state(ds, label)
        try:
            path.unlink()
        except FileNotFoundError:
            raise DataSetError(f"no clip {label}/{name} in {ds.title}", 404) from None
        state["clips"] -= 1          # its number is not given again: next stays
        _save_state(ds, label, state)
        rows = [r for r in read_manifest(ds) if r["file"] != f"{label}/{name}"]
        _write_manifest(ds, rows)


def _editable(ds: DataSet) -> None:
    if not ds.editable:
        raise DataSetError(f"the {ds.title} is built by Hark and read-only; make a data set of "
                           f"your own to record or upload clips", 403)


# ---- clips ----------------------------------------------------------------------------

def clip_path(ds: DataSet, label: str, name: str) -> Path:
    """A clip's file, only ever inside the data set: names are checked, never joined blindly."""
    if not isinstance(label, str) or not (label in (SILENCE, UNKNOWN) or LABEL.fullmatch(label)) \
            or label.startswith("."):
        raise DataSetError(f"no label {_shown(label)} in {ds.title}", 404)
    if not isinstance(name, str) or "/" in name or name.startswith(".") \
            or os.path.splitext(name)[1].lower() not in AUDIO_SUFFIXES or not name.isprintable():
        raise DataSetError(f"no clip {_shown(name)} in {ds.title}", 404)
    if len(os.fsencode(name)) > NAME_MAX:     # the file system would refuse it ("File name too long")
        raise DataSetError(f"no clip {_shown(name)} in {ds.title}: a clip's name is at most "
                           f"{NAME_MAX} bytes", 404)
    path = ds.path / label / name
    try:
        found = path.is_file()
    except (OSError, ValueError):             # any other name the file system refuses
        found = False
    if not found:
        raise DataSetError(f"no clip {label}/{name} in {ds.title}", 404)
    return path


def list_clips(ds: DataSet, label: str | None = None, page: int = 1, per_page: int = 50) -> dict:
    """One page of clips (newest first), with what the manifest knows of each."""
    labels = counts(ds)
    if label is not None and label not in labels:
        raise DataSetError(f"no label {_shown(label)} in {ds.title}", 404)
    known = {r["file"]: r for r in read_manifest(ds)} if ds.editable else {}
    files = []
    for name in ([label] if label else list(labels)):
        with os.scandir(ds.path / name) as entries:
            files += [(e.stat().st_mtime, name, e.name) for e in entries
                      if not e.name.startswith(".")
                      and os.path.splitext(e.name)[1].lower() in AUDIO_SUFFIXES]
    files.sort(key=lambda f: (-f[0], f[1], f[2]))
    per_page = min(max(per_page, 1), 500)
    pages = max(1, -(-len(files) // per_page))
    page = min(max(page, 1), pages)
    rows = []
    for _, name, file in files[(page - 1) * per_page: page * per_page]:
        row = known.get(f"{name}/{file}", {})
        rows.append({"label": name, "file": file, "speaker": row.get("speaker") or speaker_of(file),
                     "source": row.get("source"), "created": row.get("created")})
    return {"clips": rows, "total": len(files), "page": page, "pages": pages, "per_page": per_page}


def prepare(data: bytes, label: str, name: str, speaker: str, source: str) -> NewClip:
    """Decode, check and cut one clip (AudioError / DataSetError with a message for a person).

    Whatever the format, rate and channels, the result is the loudest second at 16 kHz; a
    file longer than MAX_CLIP_SECONDS, shorter than MIN_CLIP_SECONDS or silent (for any
    label but _silence_) is refused. A file named like Speech Commands' own
    (`<8 hex>_nohash_<n>`) keeps its speaker; any other takes `speaker`.
    """
    if sniff(data[:64]) is None:
        raise AudioError(f"{name}: not an audio file (send WAV, FLAC or OGG)")
    wave, rate = decode(data, max_seconds=MAX_CLIP_SECONDS, name=name, time_limit_s=2.0)
    if len(wave) < MIN_CLIP_SECONDS * rate:
        raise AudioError(f"{name}: {len(wave) / rate:.2f} s is too short to hold a word "
                         f"(at least {MIN_CLIP_SECONDS:g} s)")
    clip, _ = fit_clip(to_model_rate(wave, rate))
    if label != SILENCE and float(np.max(np.abs(clip))) < SILENT_PEAK:
        raise AudioError(f"{name}: the clip is silent (no word was heard); speak closer to the "
                         f"microphone, or file it under {SILENCE}")
    pcm = np.round(np.clip(clip, -1.0, 1.0) * 32767).astype(np.int16)
    named = speaker_of(name)
    if named:
        return NewClip(label, pcm, named, named, source)
    return NewClip(label, pcm, speaker, speaker_id_of(speaker), source)


def check_speaker(speaker) -> str:
    """A speaker's name as a person types it: printable, 1 to 40 characters."""
    text = speaker.strip() if isinstance(speaker, str) else ""
    if not text or len(text) > SPEAKER_NAME_CHARS or not text.isprintable():
        raise DataSetError(f"name the speaker: 1 to {SPEAKER_NAME_CHARS} printable characters "
                           f"(recordings of one person share it, so splits by speaker work)")
    return text


def speaker_id_of(speaker: str) -> str:
    """The 8 hex digits that stand for a speaker in file names (the same name, the same id)."""
    return hashlib.sha1(speaker.strip().lower().encode()).hexdigest()[:8]


def add(ds: DataSet, clips: list[NewClip]) -> list[str]:
    """Write converted clips into their label folders; returns their `label/file` names.

    Every label must exist already (an unknown label stores nothing); names are new, and
    the batch is all or nothing: the clips are written into a staging folder first, then
    linked into place under a plan that lets _roll_back undo them, whether this request
    fails part-way or is killed (the next writer, or the next worker's start, rolls it
    back). The work does not grow with the clips stored: label indexes give counts and
    free names, and the manifest is appended to, never read.
    """
    _editable(ds)
    if not clips:
        raise DataSetError("no clips to add")
    if len(clips) > MAX_BATCH:
        raise DataSetError(f"at most {MAX_BATCH:,} clips at once", 413)
    with _locked(ds):
        _recover(ds)
        states = {label: _label_state(ds, label) for label in _label_names(ds)}
        missing = sorted({c.label for c in clips} - set(states))
        if missing:
            raise DataSetError(f"{ds.title} has no label {', '.join(missing)}; add the label first "
                               f"(it has: {', '.join(states) or 'none yet'})")
        if sum(s["clips"] for s in states.values()) + len(clips) > MAX_CLIPS:
            raise DataSetError(f"a data set holds at most {MAX_CLIPS:,} clips", 413)
        staging = Path(tempfile.mkdtemp(dir=ds.path, prefix=STAGING))
        try:
            rows = _add_staged(ds, staging, clips, states)
        except OSError as exc:    # a full or failing disk: said, and nothing kept
            _roll_back(ds, staging)
            raise DataSetError(f"the clips could not be written ({exc.strerror or exc}); "
                               f"nothing was stored", 507) from None
        except BaseException:
            _roll_back(ds, staging)
            raise
        shutil.rmtree(staging, ignore_errors=True)
    return [row["file"] for row in rows]


def _add_staged(ds: DataSet, staging: Path, clips: list[NewClip], states: dict) -> list[dict]:
    """Stage, plan, link, append: the plan is on disk before the first link, and removed
    only once the manifest has every row (so a plan left behind means "undo this")."""
    created = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    plan, rows = [], []
    for i, clip in enumerate(clips):
        staged = staging / f"{i}.wav"
        _write_wav(staged, clip.wave)
        state = states[clip.label]
        n = state["next"].get(clip.speaker_id, 0)
        while os.path.lexists(ds.path / clip.label / f"{clip.speaker_id}_nohash_{n}.wav"):
            n += 1                   # a file the index did not know of: never replaced
        state["next"][clip.speaker_id] = n + 1
        state["clips"] += 1
        file = f"{clip.label}/{clip.speaker_id}_nohash_{n}.wav"
        plan.append((staged.name, file))
        rows.append({"file": file, "label": clip.label, "speaker": clip.speaker,
                     "source": clip.source, "created": created})
    manifest = ds.path / MANIFEST
    size = manifest.stat().st_size if manifest.is_file() else 0
    labels = sorted({c.label for c in clips})
    _write_file(staging / PLAN, json.dumps({"manifest_size": size, "files": plan,
                                            "labels": labels}).encode(), sync=True)
    for staged_name, file in plan:
        os.link(staging / staged_name, ds.path / file)   # fails when the name exists: nothing is overwritten
    _append_manifest(ds, rows, size)
    for label in labels:
        _save_state(ds, label, states[label])
    os.unlink(staging / PLAN)                       # done: from here on the batch stays
    return rows


def _write_wav(path: Path, wave: np.ndarray) -> None:
    buf = io.BytesIO()
    sf.write(buf, wave, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    _write_file(path, buf.getvalue(), sync=True)
    os.chmod(path, 0o644)


def _write_file(path: Path, data: bytes, sync: bool = False) -> None:
    with open(path, "wb") as f:
        f.write(data)
        if sync:
            f.flush()
            os.fsync(f.fileno())


def _roll_back(ds: DataSet, staging: Path) -> None:
    """Undo a batch that did not finish: unlink what its plan linked (only files that are
    still its own staged files), cut the manifest back to its size before, and drop the
    indexes of the labels it touched (the next writer counts them again)."""
    try:
        plan = json.loads((staging / PLAN).read_text())
    except (OSError, ValueError):
        plan = None                  # nothing was linked yet, or the batch was complete
    if isinstance(plan, dict):
        for staged, file in plan.get("files", []):
            final = ds.path / file
            try:
                if os.path.samefile(staging / staged, final):
                    final.unlink()
            except OSError:
                pass
        manifest = ds.path / MANIFEST
        try:
            if manifest.stat().st_size > plan["manifest_size"]:
                os.truncate(manifest, plan["manifest_size"])
        except FileNotFoundError:
            pass
        for label in plan.get("labels", []):
            (ds.path / INDEX / f"{label}.json").unlink(missing_ok=True)
    shutil.rmtree(staging, ignore_errors=True)


def _recover(ds: DataSet) -> None:
    """Roll back the batches of requests that were killed part-way (the caller holds the
    lock, so whoever wrote a staging folder is gone)."""
    with os.scandir(ds.path) as entries:
        leftovers = [Path(e.path) for e in entries if e.name.startswith(STAGING) and e.is_dir()]
    for staging in leftovers:
        _roll_back(ds, staging)


def recover_all(data_dir: Path) -> None:
    """At a worker's start: roll back what killed requests left in any user data set (a
    set another worker is writing now is skipped: its writer recovered it first)."""
    for ds in list_sets(data_dir):
        if ds.editable:
            with _locked(ds, wait=False) as mine:
                if mine:
                    _recover(ds)


# ---- label indexes -------------------------------------------------------------------------
# `.index/<label>.json`: the clips in the label's folder and each speaker's next number,
# stamped with the folder's inode and mtime. It is trusted only while the folder is
# unchanged since (a file copied in by hand changes the stamp), else counted again; only
# writers, who hold the lock, save one.

def _label_names(ds: DataSet) -> list[str]:
    with os.scandir(ds.path) as entries:
        return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))


def _stamp(folder: Path) -> list[int]:
    st = os.stat(folder)
    return [st.st_ino, st.st_mtime_ns]


def _read_state(ds: DataSet, label: str, stamp: list[int]) -> dict | None:
    """The label's index if it still describes the folder, else None."""
    try:
        with open(ds.path / INDEX / f"{label}.json", encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or state.get("stamp") != stamp \
            or not isinstance(state.get("clips"), int) or not isinstance(state.get("next"), dict):
        return None
    return state


def _scan_label(folder: Path) -> dict:
    """One pass over a label folder: its clips, and each speaker's next free number."""
    clips = 0
    next_n: dict[str, int] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            clips += os.path.splitext(entry.name)[1].lower() in AUDIO_SUFFIXES
            numbered = NUMBERED.match(entry.name)
            if numbered:
                speaker, n = numbered.group(1).lower(), int(numbered.group(2))
                next_n[speaker] = max(next_n.get(speaker, 0), n + 1)
    return {"clips": clips, "next": next_n}


def _label_state(ds: DataSet, label: str) -> dict:
    """A writer's view of a label (the lock held): its index, or one scan, saved."""
    stamp = _stamp(ds.path / label)
    state = _read_state(ds, label, stamp)
    if state is None:
        state = _scan_label(ds.path / label)
        _save_state(ds, label, state, stamp)
    return state


def _save_state(ds: DataSet, label: str, state: dict, stamp: list[int] | None = None) -> None:
    state["stamp"] = stamp or _stamp(ds.path / label)
    folder = ds.path / INDEX
    folder.mkdir(exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(state, f, separators=(",", ":"))
    os.replace(tmp, folder / f"{label}.json")


# ---- the manifest ------------------------------------------------------------------------

def read_manifest(ds: DataSet) -> list[dict]:
    path = ds.path / MANIFEST
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return [{k: row.get(k) or "" for k in MANIFEST_FIELDS} for row in csv.DictReader(f)]


def _write_manifest(ds: DataSet, rows: list[dict]) -> None:
    """Replace manifest.csv in one step (a reader never sees half of it)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=MANIFEST_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    fd, tmp = tempfile.mkstemp(dir=ds.path, prefix=f".{MANIFEST}.")
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
        f.write(out.getvalue())
    os.chmod(tmp, 0o644)
    os.replace(tmp, ds.path / MANIFEST)


def _append_manifest(ds: DataSet, rows: list[dict], size: int) -> None:
    """Rows added at the end of manifest.csv (`size` bytes now), synced: what is stored
    already is neither read nor written again."""
    path = ds.path / MANIFEST
    with open(path, "a+b") as f:
        f.seek(max(size - 1, 0))
        ends_line = size == 0 or f.read(1) == b"\n"
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=MANIFEST_FIELDS, extrasaction="ignore")
        if size == 0:
            writer.writeheader()
        writer.writerows(rows)
        f.write(("" if ends_line else "\r\n").encode() + out.getvalue().encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())


@contextlib.contextmanager
def _locked(ds: DataSet, wait: bool = True):
    """Writers of one data set take turns; with wait=False, yields False at once when busy."""
    if wait:
        with file_lock(ds.path / LOCK):
            yield True
        return
    with open(ds.path / LOCK, "a") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)



# ---- ZIP uploads -------------------------------------------------------------------------

def zip_members(data: bytes, name: str) -> tuple[list[tuple[str, bytes]], list[str]]:
    """(audio members as (name, bytes), names of other members left out) of a ZIP upload.

    Refused whole (DataSetError): a damaged or encrypted archive, a member whose path is
    absolute or climbs out with '..', a link, more than MAX_BATCH members, a member
    larger than MAX_ZIP_ENTRY or all of them past MAX_ZIP_TOTAL once unpacked, or a member
    or the archive as a whole compressed past MAX_ZIP_RATIO (a zip bomb: many members just
    under RATIO_FREE each add up). Sizes are enforced while reading, so an archive that
    lies in its headers gains nothing. Member names only label messages.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise DataSetError(f"{name}: not a readable ZIP archive ({exc})") from None
    files = [i for i in infos if not i.is_dir()]
    if len(files) > MAX_BATCH:
        raise DataSetError(f"{name}: {len(files):,} files; at most {MAX_BATCH:,} at once", 413)
    members, ignored, total = [], [], 0
    for info in files:
        shown = _shown(info.filename)
        parts = info.filename.replace("\\", "/").split("/")
        if info.filename.startswith(("/", "\\")) or ".." in parts or re.match(r"^[A-Za-z]:", info.filename):
            raise DataSetError(f"{name}: the member {shown} points outside the archive; nothing was stored")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise DataSetError(f"{name}: the member {shown} is a link; nothing was stored")
        if info.flag_bits & 0x1:
            raise DataSetError(f"{name}: the member {shown} is encrypted; nothing was stored")
        base = parts[-1]
        if info.filename.startswith(IGNORED_IN_ZIP) or base.startswith(".") \
                or os.path.splitext(base)[1].lower() not in AUDIO_SUFFIXES:
            ignored.append(info.filename)
            continue
        if info.file_size > MAX_ZIP_ENTRY:
            raise DataSetError(f"{name}: the member {shown} unpacks to {info.file_size:,} bytes; "
                               f"at most {MAX_ZIP_ENTRY:,} per file", 413)
        _check_ratio(name, f"the member {shown}", info.file_size, info.compress_size)
        _check_ratio(name, "the archive", total + info.file_size, len(data))
        try:
            with archive.open(info) as f:
                content = f.read(MAX_ZIP_ENTRY + 1)
        except (zipfile.BadZipFile, NotImplementedError, OSError, EOFError, RuntimeError) as exc:
            raise DataSetError(f"{name}: the member {shown} cannot be unpacked ({exc})") from None
        if len(content) > MAX_ZIP_ENTRY:
            raise DataSetError(f"{name}: the member {shown} unpacks to more than "
                               f"{MAX_ZIP_ENTRY:,} bytes (its header said less)", 413)
        total += len(content)
        _check_ratio(name, f"the member {shown}", len(content), info.compress_size)
        _check_ratio(name, "the archive", total, len(data))
        if total > MAX_ZIP_TOTAL:
            raise DataSetError(f"{name}: unpacks to more than {MAX_ZIP_TOTAL // 2**20} MB", 413)
        members.append((info.filename, content))
    if not members:
        raise DataSetError(f"{name}: no audio files (.wav, .flac, .ogg) in the archive")
    return members, ignored


def _check_ratio(name: str, what: str, unpacked: int, packed: int) -> None:
    """Refuse `what` when it unpacks past RATIO_FREE at more than MAX_ZIP_RATIO to 1."""
    if unpacked > RATIO_FREE and unpacked > MAX_ZIP_RATIO * max(packed, 1):
        raise DataSetError(f"{name}: {what} is compressed {unpacked // max(packed, 1):,} to 1 "
                           f"(a zip bomb?); nothing was stored", 413)


def is_zip(data: bytes) -> bool:
    return data[:4] in (b"PK\x03\x04", b"PK\x05\x06")
