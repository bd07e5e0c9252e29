"""ctypes driver for the libespeak-ng bundled in the `espeakng_loader` wheel.

Why ctypes: the wheel ships the library and its data but no Python API, and a
subprocess per word would dominate the generation time. The library is not
thread-safe; use it from one thread per process. Every call loads a fresh copy
(see `_Session`) and reseeds the random generators, so a given text, voice and
parameter set always gives the same samples whatever ran before in the process.
"""

from __future__ import annotations

import _ctypes
import ctypes
import ctypes.util
from pathlib import Path

import numpy as np

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
RATE, VOLUME, PITCH, RANGE = 1, 2, 3, 4
_PHONEMES_IPA = 0x02
_PHONEMES_TIE = 0x80

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

_state: dict = {}


def paths() -> tuple[Path, Path]:
    """(library, data dir) of the bundled eSpeak NG, or raise ImportError/RuntimeError."""
    import espeakng_loader

    return Path(espeakng_loader.get_library_path()), Path(espeakng_loader.get_data_path())


def variants() -> list[str]:
    """Names of the voice variants ("!v" files: m1..m8, f1..f5, klatt, whisper, ...)."""
    return sorted(p.name for p in (paths()[1] / "voices" / "!v").iterdir() if p.is_file())


class _Session:
    """A freshly loaded copy of the library for one call, unloaded on exit.

    eSpeak keeps static state that Terminate/Initialize do not reset (the pitch
    "flutter" phase in wavegen.c), so the same text would sound slightly
    different depending on what was spoken before. dlopen/dlclose per call
    (about 2 ms) gives every utterance the same starting state.
    """

    def __enter__(self) -> ctypes.CDLL:
        lib_path, data_path = paths()
        lib = ctypes.CDLL(str(lib_path))
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        # The path argument is the folder that *contains* espeak-ng-data.
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data_path.parent).encode(), 0)
        if rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({rate})")
        _state["rate"] = rate
        lib.espeak_SetSynthCallback(_collector())
        self.lib = lib
        return lib

    def __exit__(self, *exc) -> None:
        self.lib.espeak_Terminate()
        handle = self.lib._handle
        del self.lib
        _ctypes.dlclose(handle)


def _collector():
    if "cb" not in _state:
        chunks: list[np.ndarray] = []

        def collect(wav, n, _events):
            if n > 0 and wav:
                chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0

        _state.update(cb=_CALLBACK(collect), chunks=chunks,
                      libc=ctypes.CDLL(ctypes.util.find_library("c")))
    return _state["cb"]


def sample_rate() -> int:
    if "rate" not in _state:
        with _Session():
            pass
    return _state["rate"]


def _set_voice(lib: ctypes.CDLL, voice: str) -> None:
    if lib.espeak_SetVoiceByName(voice.encode()) != 0:
        raise ValueError(f"unknown eSpeak voice {voice!r}")


def synth(text: str, voice: str, rate: int, pitch: int, prange: int, volume: int = 100) -> np.ndarray:
    """Speak `text` with `voice` ("en-us+m3"); return float32 samples at `sample_rate()`."""
    with _Session() as lib:
        return _synth(lib, text, voice, rate, pitch, prange, volume)


def _synth(lib, text, voice, rate, pitch, prange, volume) -> np.ndarray:
    _set_voice(lib, voice)
    for param, value in ((RATE, rate), (PITCH, pitch), (RANGE, prange), (VOLUME, volume)):
        lib.espeak_SetParameter(param, int(value), 0)
    _state["libc"].srand(12345)
    lib.espeak_ng_SetRandSeed(12345)
    chunks = _state["chunks"]
    chunks.clear()
    data = text.encode() + b"\0"
    err = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
    lib.espeak_Synchronize()
    if err != 0:
        raise RuntimeError(f"espeak_Synth failed ({err})")
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    chunks.clear()
    return audio.astype(np.float32) / 32768.0


def phonemes(text: str, voice: str = "en-us", tie: bool = True) -> str:
    """IPA for `text` (multi-letter phonemes joined by "^" when `tie`), used to drive Kokoro."""
    with _Session() as lib:
        _set_voice(lib, voice)
        mode = _PHONEMES_IPA | ((_PHONEMES_TIE | (ord("^") << 8)) if tie else 0)
        buf = ctypes.c_char_p(text.encode())
        out = []
        while buf.value:
            res = lib.espeak_TextToPhonemes(ctypes.byref(buf), _CHARS_UTF8, mode)
            if res:
                out.append(res.decode())
        return " ".join(out)
