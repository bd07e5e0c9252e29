"""ml.audio.decode on good files of every kind and on hostile ones: what it accepts,
and the person-readable AudioError it gives for everything else.
"""
from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import soundfile as sf

from ml import audio
from ml.audio_fuzz import (
    HTML,
    RATE,
    encode,
    flac_with_total_samples,
    ogg_with_last_granule,
    pcm16,
    tone,
    valid_files,
    wav_header,
    zip_bytes,
)


def refused(data, match, **kw):
    with pytest.raises(audio.AudioError, match=match) as info:
        audio.decode(data, **kw)
    message = str(info.value)
    assert message.startswith("upload: ") and "<_io" not in message and "BytesIO" not in message
    return info.value


def check_audio(wave, rate, max_seconds=audio.MAX_SECONDS):
    assert wave.ndim == 1 and wave.dtype == np.float32 and len(wave) > 0
    assert np.all(np.isfinite(wave)) and np.abs(wave).max() <= 1.0
    assert len(wave) <= max_seconds * rate and audio.MIN_RATE <= rate <= audio.MAX_RATE


# ---- what is accepted -------------------------------------------------------------

def test_decode_downmixes_and_resamples():
    t = np.arange(8000) / 8000
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.zeros_like(t)], axis=1) * 0.5
    wave, rate = audio.decode(encode(stereo, 8000))
    assert rate == 8000 and wave.ndim == 1 and abs(wave.max() - 0.25) < 0.01
    assert len(audio.to_model_rate(wave, rate)) == 16000


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 48000, 96000, 192000])
def test_every_wav_sample_format_and_rate_decodes(subtype, rate):
    wave, got = audio.decode(encode(tone(0.25, rate, level=0.5), rate, "WAV", subtype))
    check_audio(wave, got)
    assert got == rate and len(wave) == int(0.25 * rate)
    assert 0.45 < np.abs(wave).max() < 0.56          # the level survives every sample format
    assert len(audio.to_model_rate(wave, got)) == pytest.approx(4000, abs=2)


@pytest.mark.parametrize("name", sorted(valid_files()))
def test_every_small_valid_file_decodes(name):
    check_audio(*audio.decode(valid_files()[name]))


@pytest.mark.parametrize("channels", [2, 3, 6, 8, 32])
def test_multichannel_is_averaged_to_mono(channels):
    frames = np.zeros((1600, channels), np.float32)
    frames[:, 0] = 0.8
    wave, _ = audio.decode(encode(frames, RATE, "WAV", "FLOAT"))
    assert wave.shape == (1600,) and np.allclose(wave, 0.8 / channels)


def test_silence_decodes_to_zeros():
    wave, rate = audio.decode(encode(np.zeros(RATE, np.float32)))
    assert rate == RATE and wave.shape == (RATE,) and not wave.any()


def test_out_of_range_float_samples_are_clipped():
    wave, _ = audio.decode(encode(np.array([3.0, -1e30, 0.5] * 100, np.float32), RATE, "WAV", "FLOAT"))
    assert wave.max() == 1.0 and wave.min() == -1.0 and 0.5 in wave


def test_wav_with_placeholder_data_size_reads_to_the_end():
    """Streaming writers that cannot seek back leave 0xFFFFFFFF: the data runs to the end."""
    payload = pcm16(tone(0.5))
    wave, rate = audio.decode(wav_header(payload_len=len(payload), data_size=0xFFFFFFFF,
                                         riff_size=0xFFFFFFFF) + payload)
    assert rate == RATE and len(wave) == RATE // 2


def test_paths_decode_and_load_clip_gives_one_model_second(tmp_path):
    path = tmp_path / "a.flac"
    path.write_bytes(encode(tone(2.0, 44100), 44100, "FLAC"))
    wave, rate = audio.decode(path)
    assert rate == 44100 and len(wave) == 88200
    clip = audio.load_clip(path)
    assert clip.shape == (audio.CLIP_SAMPLES,) and clip.dtype == np.float32


def test_missing_or_unreadable_paths_are_audio_errors(tmp_path):
    with pytest.raises(audio.AudioError, match=r"missing\.wav: cannot be read"):
        audio.decode(tmp_path / "missing.wav")
    with pytest.raises(audio.AudioError, match="cannot be read"):
        audio.decode(tmp_path)
    (tmp_path / "notes.wav").write_text("hello")
    with pytest.raises(audio.UnsupportedFormat, match=r"notes.wav: not a readable audio file \(unsupported file type"):
        audio.decode(tmp_path / "notes.wav")


def test_name_sets_how_messages_refer_to_the_input():
    with pytest.raises(audio.AudioError, match=r"^clip\.wav: the file is empty$"):
        audio.decode(b"", name="clip.wav")


# ---- what is refused ----------------------------------------------------------------

@pytest.mark.parametrize("data", [zip_bytes(), HTML, b"ID3\x03\x00\x00\x00" + bytes(200),
                                  b"\x89PNG\r\n\x1a\n" + bytes(64), b"RIFF\x10\x00\x00\x00AVI LIST",
                                  b"FORM\x00\x00\x00\x10AIFF", b"fLa", b"Ogg"])
def test_other_formats_are_unsupported(data):
    error = refused(data, "unsupported file type; send WAV, FLAC or OGG audio")
    assert isinstance(error, audio.UnsupportedFormat)


def test_empty_input():
    assert not isinstance(refused(b"", "the file is empty"), audio.UnsupportedFormat)


@pytest.mark.parametrize("data, match", [
    (b"RIFF\x00\x00\x00\x00WAVEjunk", "not a readable audio file"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt garbage" + bytes(40), "not a readable audio file"),
    (encode(tone(0.1))[:30], r"not a readable audio file \(.*'data' chunk"),
    (encode(tone(0.1))[:12] + np.random.default_rng(1).bytes(4000), "not a readable audio file"),
])
def test_broken_wav_headers(data, match):
    refused(data, match)


def test_wav_header_without_data():
    refused(wav_header(payload_len=3200), r"cut short \(its header promises 3.1 KB of audio data; 0 bytes are there\)")
    refused(wav_header(), "holds no samples")


def test_wav_data_chunk_cut_short():
    whole = encode(tone(1.0))
    refused(whole[:len(whole) // 3], r"the file is cut short \(its header promises 31.2 KB of audio data")


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
def test_big_endian_rifx_wav_decodes_like_riff(subtype):
    wave = tone(0.3)
    buf = io.BytesIO()
    sf.write(buf, wave, RATE, format="WAV", subtype=subtype, endian="BIG")
    big = buf.getvalue()
    assert big[:4] == b"RIFX" and audio.sniff(big) == "wav"
    decoded, rate = audio.decode(big)
    little, _ = audio.decode(encode(wave, RATE, "WAV", subtype))
    assert rate == RATE and np.array_equal(decoded, little)
    # its header is checked as a RIFF one is, in its own byte order
    with pytest.raises(audio.AudioError, match="cut short"):
        audio.decode(big[:len(big) // 2])
    wide = big[:22] + struct.pack(">H", 40) + big[24:]
    with pytest.raises(audio.AudioError, match="40 channels is more than Hark reads"):
        audio.decode(wide)


def test_wav_header_claiming_gigabytes():
    payload = pcm16(tone(0.2))
    for size in (0x7FFFFFFF, 0xFFFFFFFE):
        refused(wav_header(data_size=size, riff_size=0xFFFFFFFF, payload_len=len(payload)) + payload,
                r"cut short \(its header promises [24].0 GB")


def test_rf64_claiming_a_huge_length_is_refused():
    data = bytearray(encode(tone(0.2), RATE, "RF64"))
    ds64 = data.index(b"ds64") + 8
    data[ds64 + 8:ds64 + 16] = struct.pack("<Q", 2 ** 40)      # data size: a terabyte
    refused(bytes(data), r"cut short \(its header promises 1.0 TB")


def test_random_bytes_after_a_valid_header_are_refused_or_bounded():
    header = encode(tone(0.1))[:44]
    refused(header + np.random.default_rng(2).bytes(1000), "cut short")
    noise = np.random.default_rng(3).bytes(3200)      # as much as the header declares: just noise
    check_audio(*audio.decode(header[:40] + struct.pack("<I", 3200) + noise))


@pytest.mark.parametrize("channels", [0, 33, 255, 1024, 65535])
def test_absurd_channel_counts(channels):
    match = "no audio channels" if channels == 0 else f"{channels} channels is more than Hark reads"
    refused(wav_header(channels=channels, block_align=2, payload_len=3200) + bytes(3200), match)


@pytest.mark.parametrize("rate", [0, 1, 999, 384_001, 10_000_000, 0xFFFFFFFF])
def test_absurd_sample_rates(rate):
    refused(wav_header(rate=rate, payload_len=3200) + bytes(3200), f"unsupported sample rate {rate} Hz")


@pytest.mark.parametrize("rate", [1000, 384_000])
def test_sample_rate_limits_are_inclusive(rate):
    check_audio(*audio.decode(wav_header(rate=rate, payload_len=1600) + pcm16(tone(0.05, 16000))))


def test_nan_and_inf_samples():
    for bad in (np.nan, np.inf, -np.inf):
        refused(encode(np.array([0.0, bad, 0.1] * 100, np.float32), RATE, "WAV", "FLOAT"),
                "NaN or infinite samples")
    refused(encode(np.array([0.0, np.nan] * 100), RATE, "WAV", "DOUBLE"), "NaN or infinite")


def test_float_wav_whose_data_is_garbage():
    header = wav_header(tag=3, bits=32, payload_len=64000)
    data = np.frombuffer(np.random.default_rng(4).bytes(64000), np.uint8).copy()
    data.view(np.uint32)[::97] = 0x7FC00000   # certainly some NaNs among the garbage
    refused(header + data.tobytes(), "NaN or infinite samples")


def test_too_long():
    refused(encode(np.zeros(3 * RATE)), r"audio longer than 2 s is not accepted \(this file declares 3 s\)",
            max_seconds=2)
    refused(encode(np.zeros(31 * 8000), 8000), "longer than 30 s")


def test_declared_length_is_checked_before_reading():
    """A FLAC that declares an hour is refused from its header, whatever it holds."""
    refused(flac_with_total_samples(encode(tone(0.5), RATE, "FLAC"), 3600 * RATE),
            r"longer than 30 s is not accepted \(this file declares 60 min\)")


def test_too_much_audio_to_decode_is_refused_before_decoding():
    """Compressed silence expands enormously: frames x channels is capped, not just seconds."""
    data = encode(np.zeros((384_000, 8), np.float32), 384_000, "FLAC", "PCM_16")   # 1 s, 8 ch, 384 kHz
    refused(data, "too much audio to decode", max_seconds=1)


def test_too_much_audio_without_a_declared_length_stops_at_the_cap():
    data = flac_with_total_samples(encode(np.zeros((384_000, 8), np.float32), 384_000, "FLAC"), 0)
    refused(data, r"too much audio to decode \(8 channels at 384,000 Hz; at most 0.4 million", max_seconds=1)


def test_flac_understating_its_length_is_read_only_as_far_as_declared():
    data = flac_with_total_samples(encode(tone(3.0), RATE, "FLAC"), 1000)
    wave, _ = audio.decode(data, max_seconds=1)
    assert len(wave) == 1000


def test_flac_without_a_declared_length_is_read_up_to_the_cap():
    data = flac_with_total_samples(encode(tone(3.0), RATE, "FLAC"), 0)   # a streamed FLAC
    refused(data, "longer than 1 s is not accepted", max_seconds=1)
    wave, rate = audio.decode(data, max_seconds=5)
    check_audio(wave, rate, 5)
    assert 2.5 * RATE < len(wave) <= 3 * RATE


def test_ogg_understating_its_length_is_read_only_as_far_as_declared():
    data = ogg_with_last_granule(encode(tone(3.0), RATE, "OGG", "VORBIS"), 8000)
    wave, rate = audio.decode(data, max_seconds=1)
    check_audio(wave, rate, 1)
    assert len(wave) <= 8000


def test_ogg_claiming_an_enormous_length_is_refused():
    refused(ogg_with_last_granule(encode(tone(3.0), RATE, "OGG", "VORBIS"), 2 ** 62), "longer than 30 s")


def test_truncated_flac():
    whole = valid_files()["flac"]
    for cut in (42, len(whole) // 3, len(whole) - 10):
        refused(whole[:cut], "damaged or cut short")
    refused(whole[:10], "not a readable audio file")


@pytest.mark.parametrize("kind", ["ogg-vorbis", "ogg-opus"])
def test_truncated_ogg_is_refused_or_read_as_far_as_it_goes(kind):
    """An Ogg stream has no total length to check: what survives whole is read, or nothing is."""
    whole = valid_files()[kind]
    for cut in (4, 28, 100, len(whole) // 2, len(whole) - 5):
        try:
            wave, rate = audio.decode(whole[:cut])
        except audio.AudioError as exc:
            assert str(exc).startswith("upload: ")
        else:
            check_audio(wave, rate)
    refused(whole[:100], "not a readable audio file|holds no samples")


def test_decoding_time_limit():
    data = encode(tone(20.0))      # several blocks
    refused(data, r"decoding took longer than 0 s; the file was refused", time_limit_s=0)
    check_audio(*audio.decode(data))
