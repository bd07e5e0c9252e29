"""Adding a 1,000-clip ZIP to a data set: into an empty label, and into one holding many clips.

Issue 27, item 6: an add re-read everything stored (a listing of the label folder for every
clip, the whole manifest read and written again), so a 1,000-clip ZIP took 4.9 s into an
empty label and 57 s into one of 45,000 clips, past gunicorn's timeout. An add is now
O(batch): the two figures should be about the same.

Each run does what `POST /admin/api/datasets/<key>/clips` does with the ZIP
(webapp/datasets/views.py _upload): unpack, convert every clip (decode, fit to one second),
add them, count the labels for the answer. "store" is the add and the count alone (the part
that grew with the clips stored); "total" includes the conversion, which does not depend on
them. The label's earlier clips are made fast, as earlier adds leave them (one clip linked
under `--stored` names, with their manifest rows): listing and counting cost the same as
for distinct files. A throwaway data folder; nothing else is touched.

Run:  PYTHONPATH=. .venv/bin/python bench/dataset_add.py [--stored 45000] [--clips 1000]
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from webapp.datasets import store  # noqa: E402


def clip_zip(n: int) -> bytes:
    """`n` different one-second words (a tone sweep in noise, 16 kHz WAV), deflated."""
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(n):
            f0 = 300 + 1500 * rng.random()
            word = 0.4 * np.sin(2 * np.pi * (f0 + 400 * t) * t) * np.hanning(16000)
            wave = (word + rng.normal(0, 0.01, 16000)).astype(np.float32)
            out = io.BytesIO()
            sf.write(out, wave, 16000, format="WAV", subtype="PCM_16")
            z.writestr(f"take{i:04d}.wav", out.getvalue())
    return buf.getvalue()


def seed(ds: store.DataSet, label: str, n: int) -> None:
    """`n` clips in `label` as earlier adds leave them: files and manifest rows."""
    one = ds.path / ".seed.wav"
    buf = io.BytesIO()
    sf.write(buf, np.zeros(16000, np.int16), 16000, format="WAV", subtype="PCM_16")
    one.write_bytes(buf.getvalue())
    files = [f"{label}/aaaaaaaa_nohash_{i}.wav" for i in range(n)]
    for file in files:
        os.link(one, ds.path / file)
    one.unlink()
    with open(ds.path / store.MANIFEST, "a", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([file, label, "seed", "seed", ""] for file in files)


def add_zip(ds: store.DataSet, archive: bytes) -> tuple[float, float, int]:
    """(total s, store s, clips added) of one upload of `archive` into label yes."""
    start = time.perf_counter()
    members, _ = store.zip_members(archive, "clips.zip")
    clips = [store.prepare(content, "yes", name, "Bench", f"zip:clips.zip/{name}")
             for name, content in members]
    stored = time.perf_counter()
    added = store.add(ds, clips)
    store.counts(ds)
    end = time.perf_counter()
    return end - start, end - stored, len(added)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stored", type=int, default=45_000, help="clips already in the full label")
    parser.add_argument("--clips", type=int, default=1_000, help="clips in the ZIP")
    args = parser.parse_args()
    archive = clip_zip(args.clips)
    print(f"ZIP of {args.clips:,} clips: {len(archive) / 1e6:.1f} MB")
    with tempfile.TemporaryDirectory(prefix="hark-bench-add-") as tmp:
        for name, before in (("empty", 0), ("full", args.stored)):
            ds = store.create(Path(tmp), name, ["yes"])
            seed(ds, "yes", before)
            total, store_s, added = add_zip(ds, archive)
            assert store.counts(ds)["yes"] == before + added == before + args.clips
            print(f"into a label of {before:>6,} clips: {total:6.2f} s in all, "
                  f"{store_s:6.2f} s to store and count")


if __name__ == "__main__":
    main()
