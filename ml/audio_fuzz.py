"""Hostile and odd audio inputs for ml.audio.decode, shared by the hostile-upload tests, the fuzz tests and
bench/fuzz_predict.py: hand-made WAV headers, small valid files in every format the
decoder reads, and hypothesis strategies that break them in many ways.
"""
from __future__ import annotations

import functools
import io
import struct
import zipfile

import numpy as np
import soundfile as sf
from hypothesis import strategies as st

RATE = 16000


def tone(seconds: float = 0.5, rate: int = RATE, channels: int = 1, freq: float = 1500.0,
         level: float = 0.5) -> np.ndarray:
    """A tone burst in quiet noise: word-like enough for the tiny model."""
    rng = np.random.default_rng(7)
    t = np.arange(int(seconds * rate)) / rate
    wave = rng.normal(0, 0.01, t.size) + level * np.sin(2 * np.pi * freq * t)
    wave = wave.astype(np.float32)
    return np.column_stack([wave] * channels) if channels > 1 else wave


def encode(wave: np.ndarray, rate: int = RATE, fmt: str = "WAV", subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wave, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def wav_header(*, tag: int = 1, channels: int = 1, rate: int = RATE, bits: int = 16,
               block_align: int | None = None, data_size: int | None = None,
               riff_size: int | None = None, payload_len: int = 0) -> bytes:
    """A canonical 44-byte RIFF/WAVE header with every field settable (lies included)."""
    if block_align is None:
        block_align = (channels * bits // 8) & 0xFFFF
    byte_rate = (rate * block_align) & 0xFFFFFFFF
    data_size = payload_len if data_size is None else data_size
    riff_size = 36 + payload_len if riff_size is None else riff_size
    return (b"RIFF" + struct.pack("<I", riff_size & 0xFFFFFFFF) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, tag & 0xFFFF, channels & 0xFFFF,
                                    rate & 0xFFFFFFFF, byte_rate, block_align & 0xFFFF, bits & 0xFFFF)
            + b"data" + struct.pack("<I", data_size & 0xFFFFFFFF))


def pcm16(wave: np.ndarray) -> bytes:
    return (np.clip(wave, -1, 1) * 32767).astype("<i2").tobytes()


def zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("clip.wav", encode(tone(0.1)))
    return buf.getvalue()


HTML = b"<!DOCTYPE html><html><head><title>clip</title></head><body>not audio</body></html>"


@functools.lru_cache(maxsize=1)
def valid_files() -> dict[str, bytes]:
    """Small valid files reaching every decoder path: WAV codecs, RF64, WAVEX, FLAC, Vorbis, Opus."""
    files = {}
    for subtype, rate, channels in [("PCM_16", 16000, 1), ("PCM_U8", 8000, 2), ("PCM_24", 44100, 1),
                                    ("PCM_32", 22050, 1), ("FLOAT", 16000, 1), ("DOUBLE", 11025, 1),
                                    ("ULAW", 8000, 1), ("ALAW", 8000, 1), ("IMA_ADPCM", 16000, 1),
                                    ("MS_ADPCM", 16000, 2), ("GSM610", 8000, 1)]:
        files[f"wav-{subtype.lower()}"] = encode(tone(0.3, rate, channels), rate, "WAV", subtype)
    files["wavex-6ch"] = encode(tone(0.1, 8000, 6), 8000, "WAVEX", "PCM_16")
    files["rf64"] = encode(tone(0.3), RATE, "RF64", "PCM_16")
    files["flac"] = encode(tone(0.5), RATE, "FLAC", "PCM_16")
    files["flac-24-stereo"] = encode(tone(0.2, 48000, 2), 48000, "FLAC", "PCM_24")
    files["ogg-vorbis"] = encode(tone(0.5), RATE, "OGG", "VORBIS")
    files["ogg-opus"] = encode(tone(0.5, 48000), 48000, "OGG", "OPUS")
    return files


# ---- hypothesis strategies ----------------------------------------------------

BOUNDARY_INTS = [0, 1, 2, 3, 7, 8, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000,
                 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF, 2 ** 63 - 1, 2 ** 64 - 1]
MAGICS = [b"RIFF\x00\x00\x00\x00WAVE", b"RIFF\xff\xff\xff\xffWAVEfmt ", b"RF64\xff\xff\xff\xffWAVEds64",
          b"fLaC", b"fLaC\x00\x00\x00\x22", b"OggS", b"OggS\x00\x02"]


@st.composite
def mutated(draw, base=None) -> bytes:
    """A valid file broken by a few random edits, aimed mostly at the header."""
    data = bytearray(draw(st.sampled_from(sorted(valid_files().items())))[1] if base is None else base)
    for _ in range(draw(st.integers(1, 4))):
        n = len(data)
        where = draw(st.one_of(st.integers(0, min(n, 128)), st.integers(0, n)))
        op = draw(st.sampled_from(["flip", "int", "truncate", "insert", "delete", "append", "splice"]))
        if op == "flip" and where < n:
            data[where] ^= draw(st.integers(1, 255))
        elif op == "int":
            width = draw(st.sampled_from([1, 2, 4, 8]))
            value = draw(st.sampled_from(BOUNDARY_INTS)) & ((1 << 8 * width) - 1)
            data[where:where + width] = value.to_bytes(width, "little")
        elif op == "truncate":
            del data[where:]
        elif op == "insert":
            data[where:where] = draw(st.binary(min_size=1, max_size=64))
        elif op == "delete":
            del data[where:where + draw(st.integers(1, 256))]
        elif op == "append":
            data += draw(st.binary(min_size=1, max_size=2048))
        elif op == "splice":   # a part of another valid file in the middle of this one
            other = draw(st.sampled_from(sorted(valid_files().values())))
            start = draw(st.integers(0, len(other)))
            data[where:where] = other[start:start + draw(st.integers(1, 4096))]
    return bytes(data)


@st.composite
def crafted_wav(draw) -> bytes:
    """A hand-made WAV header with drawn (often absurd) fields, then a drawn payload."""
    payload = draw(st.one_of(st.binary(max_size=4096),
                             st.builds(lambda n: pcm16(tone(n / RATE)), st.integers(0, 8000))))
    header = wav_header(
        tag=draw(st.sampled_from([1, 3, 6, 7, 2, 0x11, 0x31, 0x55, 0xFFFE, 0, 0xFFFF])),
        channels=draw(st.sampled_from([0, 1, 2, 3, 6, 8, 32, 33, 255, 1024, 65535])),
        rate=draw(st.sampled_from([0, 1, 999, 1000, 8000, 16000, 44100, 192000, 384000, 384001,
                                   10_000_000, 0xFFFFFFFF])),
        bits=draw(st.sampled_from([0, 1, 4, 8, 12, 16, 24, 32, 48, 64, 0xFFFF])),
        block_align=draw(st.one_of(st.none(), st.sampled_from([0, 1, 3, 0xFFFF]))),
        data_size=draw(st.one_of(st.none(), st.sampled_from(BOUNDARY_INTS[:18]))),
        payload_len=len(payload))
    return header + payload


def magic_prefixed() -> st.SearchStrategy[bytes]:
    """Random bytes behind a real signature, so they pass sniffing and reach the decoder."""
    return st.builds(lambda magic, rest: magic + rest, st.sampled_from(MAGICS), st.binary(max_size=4096))


def hostile_bytes() -> st.SearchStrategy[bytes]:
    """Everything above, plus plain random bytes and the known disguises."""
    return st.one_of(st.binary(max_size=2048), magic_prefixed(), mutated(), crafted_wav(),
                     st.sampled_from([b"", HTML, zip_bytes(), b"ID3\x03" + bytes(200)]))


# ---- files whose header understates their length ------------------------------

def _ogg_crc(page: bytes) -> int:
    crc = 0
    for byte in page:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def ogg_with_last_granule(data: bytes, granule: int) -> bytes:
    """An Ogg stream whose last page claims `granule` samples (CRC fixed, so it is believed)."""
    last = data.rindex(b"OggS")
    page = bytearray(data[last:])
    page[6:14] = struct.pack("<q", granule)
    page[22:26] = b"\0\0\0\0"
    page[22:26] = struct.pack("<I", _ogg_crc(bytes(page)))
    return data[:last] + bytes(page)


def flac_with_total_samples(data: bytes, total: int) -> bytes:
    """A FLAC file whose STREAMINFO declares `total` samples (36 bits; 0 means unknown)."""
    out = bytearray(data)
    out[21] = (out[21] & 0xF0) | ((total >> 32) & 0x0F)
    out[22:26] = struct.pack(">I", total & 0xFFFFFFFF)
    return bytes(out)
