"""The export bundle: one ZIP with everything needed to run a model elsewhere and to know what it is.

    hark-<run>/model.tflite      the served model as one graph, waveform in, probabilities out
    hark-<run>/labels.json       output order
    hark-<run>/metrics.json      test-split figures (as in the run directory)
    hark-<run>/evaluations.json  accuracy on other folders (real speech), where measured
    hark-<run>/MODEL_CARD.md     data, recipe, accuracy, latency, intended use, limits, licences
                                 (ml/export/model_card.py)
    hark-<run>/predict.py        standalone: numpy, soundfile and ai-edge-litert (ml/export/predict.py)
    hark-<run>/requirements.txt  those, pinned
    hark-<run>/README.md         how to run it

No TensorFlow here: ml/export/writers.py converts the model and hands over the bytes.
"""
from __future__ import annotations

import json
import time
import zipfile
from importlib import metadata
from pathlib import Path

from ml.config import SILENCE, UNKNOWN
from ml.export.model_card import Facts, model_card, shown_folder

MODEL_FILE = "model.tflite"
PREDICT_SOURCE = Path(__file__).with_name("predict.py")     # copied into the bundle as predict.py
RUNTIME = ("numpy", "soundfile", "ai-edge-litert")    # all predict.py needs


def write_bundle(out: Path, facts: Facts) -> None:
    """Write the ZIP (`out` is the caller's temporary file)."""
    top = f"hark-{facts.run_id}"
    entries: dict[str, bytes | str] = {**facts.model_files,
               "labels.json": json.dumps(facts.labels, indent=1),
               "MODEL_CARD.md": model_card(facts),
               "README.md": readme(facts),
               "predict.py": PREDICT_SOURCE.read_text(),
               "requirements.txt": requirements(RUNTIME)}
    if facts.metrics is not None:
        entries["metrics.json"] = json.dumps(facts.metrics, indent=1)
    if facts.evaluations:
        entries["evaluations.json"] = json.dumps([{**e, "folder": shown_folder(e.get("folder"))}
                                                  for e in facts.evaluations], indent=1)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in entries.items():
            info = zipfile.ZipInfo(f"{top}/{name}", date_time=time.localtime()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o755 if name == "predict.py" else 0o644) << 16
            zf.writestr(info, content)


def requirements(runtime: tuple[str, ...] = RUNTIME) -> str:
    lines = ["# what predict.py needs (the versions Hark was tested with)"]
    for name in runtime:
        try:
            lines.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            lines.append(name)
    return "\n".join(lines) + "\n"


def readme(facts: Facts) -> str:
    words = ", ".join(label for label in facts.labels if label not in (SILENCE, UNKNOWN))
    return f"""# Hark model {facts.run_id}

A spoken-command classifier exported from Hark: it hears one second of audio and says
which of these it is: {words}{_specials(facts.labels)}.
What it is, how it was made and how well it works: MODEL_CARD.md.

## Run it

```sh
python -m venv .venv && . .venv/bin/activate
pip install -r requirements.txt        # {', '.join(RUNTIME)}: nothing else
python predict.py some.wav other.wav   # WAV files of any sample rate; --json for JSON
```

Each file is mixed down to mono, resampled to 16 kHz and cut to its loudest second (a
shorter one is padded with silence), as the Hark app does.

## Use the model in your own code

{_use_in_code(facts)}"""


def _use_in_code(facts: Facts) -> str:
    n = len(facts.labels)
    inside = ("Google's pretrained speech embedding and the heads on it" if facts.uses_embedding
              else "the feature extraction (log-mel or spectrogram)")
    if len(facts.inputs) > 1:
        inside += ", every member of the ensemble and their average"
    return f"""`{MODEL_FILE}` is a LiteRT (TensorFlow Lite) model, one graph. Input: float32 `[1, 16000]`, one
second of 16 kHz mono audio with samples in [-1, 1]; {inside} are inside the model.
Output: float32 `[1, {n}]`, the probability of each label in the order of `labels.json`
(the `_unknown_` weight applied). `predict.py` shows the whole path from a file to a label."""


def _specials(labels: list[str]) -> str:
    parts = []
    if SILENCE in labels:
        parts.append("nobody speaking (`_silence_`)")
    if UNKNOWN in labels:
        parts.append("a word that is not a command (`_unknown_`)")
    return (", or " + " or ".join(parts)) if parts else ""
