"""Hostile uploads through the Flask test client: every one gets a clear 4xx JSON error
(or, when it is odd but valid audio, a normal answer), never a 5xx, and the app keeps
answering afterwards.

Status choices (docs/api.md, "Errors"): 413 for a request over the size limit; 415 when
the content is no WAV, FLAC or OGG whatever its name or Content-Type; 400 for audio that
is broken, empty, cut short, too long (duration cap), has NaN/inf samples, no or too many
channels, an absurd rate, or would take too much work to decode.
"""
from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import soundfile as sf

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

URLS = ["/api/predict", "/api/analyze"]


@pytest.fixture(scope="module")
def make_app(app_factory, tiny_run):
    return lambda **config: app_factory(HARK_MODEL=str(tiny_run), RATELIMIT_ENABLED=False, **config)


@pytest.fixture(scope="module")
def app(make_app):
    return make_app()


@pytest.fixture(scope="module")
def labels(app):
    return app.test_client().get("/api/health").get_json()["labels"]


def upload(client, data, name="clip.wav", url="/api/predict", content_type="audio/wav"):
    return client.post(url, data={"file": (io.BytesIO(data), name, content_type)},
                       content_type="multipart/form-data")


def raw(client, data, url="/api/predict", content_type="audio/wav"):
    return client.post(url, data=data, content_type=content_type)


def refused(response, status, *fragments):
    """A JSON error with this status whose message holds every fragment; returns it."""
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/json"
    message = response.get_json()["error"]
    assert isinstance(message, str) and message
    for fragment in fragments:
        assert fragment in message, message
    for leak in ("Traceback", "<_io", "BytesIO", "Error opening", "soundfile", "File \""):
        assert leak not in message, message
    return message


def answered(response, labels):
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    body = response.get_json()
    assert body["label"] in labels and abs(sum(body["probabilities"].values()) - 1) < 1e-3
    return body


# ---- size, duration and work caps ------------------------------------------------

@pytest.mark.parametrize("url", URLS)
def test_request_over_10_mb_is_413_multipart_and_raw(client, app, url):
    assert app.config["MAX_CONTENT_LENGTH"] == 10 * 1024 * 1024
    big = encode(tone(1.0)) + bytes(10 * 1024 * 1024)
    refused(upload(client, big, url=url), 413, "too large", "10 MB")
    refused(raw(client, big, url=url), 413, "too large", "10 MB")


def chunked(client, body: bytes, content_type: str):
    """As gunicorn passes a chunked request: no Content-Length, input terminated by the server."""
    return client.post("/api/predict", input_stream=io.BytesIO(body), content_type=content_type,
                       headers={"Transfer-Encoding": "chunked"},
                       environ_overrides={"wsgi.input_terminated": True})


def test_chunked_body_without_content_length_is_capped_too(client, labels):
    """Werkzeug would silently cut such a body at the limit; it must be a 413 instead."""
    big = encode(tone(1.0)) + bytes(10 * 1024 * 1024)
    refused(chunked(client, big, "audio/wav"), 413, "too large")
    part = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
    refused(chunked(client, part + big + b"\r\n--b--\r\n", "multipart/form-data; boundary=b"), 413, "too large")
    answered(chunked(client, encode(tone(1.0)), "audio/wav"), labels)      # a small one is fine
    exact = wav_header(payload_len=10 * 1024 * 1024 - 44) + bytes(10 * 1024 * 1024 - 44)
    refused(chunked(client, exact, "audio/wav"), 400, "longer than 30 s")   # exactly the limit: read


@pytest.mark.parametrize("url", URLS)
def test_longer_than_30_s_is_400(client, url):
    refused(upload(client, encode(np.zeros(31 * 8000), 8000), url=url), 400,
            "clip.wav: audio longer than 30 s is not accepted")


def test_a_file_under_10_mb_holding_minutes_is_refused_by_the_duration_cap(client):
    payload = bytes(9 * 1024 * 1024)                                  # 4.9 min of 16-bit silence
    refused(upload(client, wav_header(payload_len=len(payload)) + payload), 400, "longer than 30 s")


def test_header_claiming_hours_is_refused_before_decoding(client):
    data = flac_with_total_samples(encode(tone(0.5), RATE, "FLAC"), 3 * 3600 * RATE)
    refused(upload(client, data, name="hours.flac"), 400, "hours.flac: audio longer than 30 s",
            "declares 3 h")


def test_too_much_audio_to_decode_is_400(make_app):
    small = make_app(HARK_MAX_SECONDS=1.0).test_client()
    data = encode(np.zeros((384_000, 8), np.float32), 384_000, "FLAC", "PCM_16")   # 8 ch, 384 kHz
    refused(upload(small, data, name="wide.flac"), 400, "wide.flac: too much audio to decode")


def test_ogg_understating_its_length_is_read_no_further_than_it_claims(client, labels):
    data = ogg_with_last_granule(encode(tone(40.0, 8000), 8000, "OGG", "VORBIS"), 8000)
    body = answered(upload(client, data, name="liar.ogg"), labels)
    assert body["duration_s"] <= 1.0


@pytest.fixture(scope="module")
def refused_heavy() -> dict[str, bytes]:
    """Files decoded up to the cap and then refused: 30 s at 384 kHz cut short, and 31 s whose
    FLAC header says its length is unknown (silence: tens of KB, 11.5 million samples each)."""
    whole = encode(np.zeros(30 * 384_000, np.float32), 384_000, "FLAC")
    endless = flac_with_total_samples(encode(np.zeros(31 * 384_000, np.float32), 384_000, "FLAC"), 0)
    return {"cut.flac": whole[:len(whole) * 3 // 4], "endless.flac": endless}


@pytest.mark.parametrize("url, names", [("/api/predict", ["cut.flac", "endless.flac"]),
                                        ("/api/analyze", ["cut.flac", "endless.flac"]),
                                        ("/api/detect", ["cut.flac"])])
def test_refused_decodes_are_charged_the_samples_they_decoded(app_factory, refused_heavy, url, names):
    client = app_factory(HARK_RATE_AUDIO_SECONDS="3000/minute").test_client()
    statuses, messages = [], []
    for i in range(8):
        name = names[i % len(names)]
        r = client.post(url, data={"file": (io.BytesIO(refused_heavy[name]), name)},
                        content_type="multipart/form-data")
        statuses.append(r.status_code)
        messages.append(refused(r, r.status_code))
    # ~8.6 or 11.5 million samples at 384 kHz cost 540 or 720 s at 16 kHz: 3,000 go in 4 to 6.
    assert statuses[:4] == [400] * 4 and statuses[-2:] == [429, 429], statuses
    assert all("too much audio" in m for s, m in zip(statuses, messages) if s == 429), messages


# ---- content sniffing, not names or types ------------------------------------------

@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("data", [zip_bytes(), HTML, b"ID3\x03\x00\x00\x00" + bytes(300),
                                  b"\x89PNG\r\n\x1a\n" + bytes(100), b"RIFF\x10\x00\x00\x00AVI LIST",
                                  b"%PDF-1.7\n", b"MZ\x90\x00" + bytes(60), b"\x00" * 4096])
def test_disguised_non_audio_is_415(client, url, data):
    refused(upload(client, data, name="clip.wav", url=url), 415,
            "clip.wav: unsupported file type", "WAV, FLAC or OGG")
    refused(raw(client, data, url=url, content_type="audio/wav"), 415, "upload: unsupported file type")


@pytest.mark.parametrize("content_type", ["text/html", "application/zip", "image/png",
                                          "application/octet-stream", "audio/mpeg"])
def test_real_audio_with_a_misleading_type_or_name_is_classified(client, labels, content_type):
    data = encode(tone(1.0))
    answered(upload(client, data, name="holiday.jpg", content_type=content_type), labels)
    answered(raw(client, data, content_type=content_type), labels)


def test_file_names_are_shown_cleaned_and_never_used_as_paths(client, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    message = refused(upload(client, HTML, name="../../etc/evil\x00\x1b[31m.wav"), 415)
    assert message.startswith("evil[31m.wav: ") and "/" not in message.split(":")[0]
    message = refused(upload(client, HTML, name="C:\\Windows\\x.wav"), 415)
    assert message.split(": ")[0].endswith("x.wav") and "\\" not in message
    long_name = "a" * 5000 + ".wav"
    assert len(refused(upload(client, HTML, name=long_name), 415)) < 200
    answered(upload(client, encode(tone(1.0)), name="../../../tmp/stored.wav"),
             client.get("/api/health").get_json()["labels"])
    assert list(tmp_path.iterdir()) == []          # nothing written where the name pointed


# ---- empty, truncated, broken --------------------------------------------------------

@pytest.mark.parametrize("url", URLS)
def test_zero_length(client, url):
    refused(upload(client, b"", name="empty.wav", url=url), 400, "empty.wav", "empty")
    refused(raw(client, b"", url=url), 400, "the request body is empty")


def test_multipart_without_the_file_field_or_with_a_broken_boundary(client):
    refused(client.post("/api/predict", data={"audio": (io.BytesIO(encode(tone(0.5))), "a.wav")},
                        content_type="multipart/form-data"), 400, "'file'")
    r = client.post("/api/predict", data=b"--nope\r\n\r\nRIFF", content_type="multipart/form-data")
    assert 400 <= r.status_code < 500 and "error" in r.get_json()


@pytest.mark.parametrize("url", URLS)
def test_header_only_wav(client, url):
    refused(upload(client, encode(tone(1.0))[:44], url=url), 400, "clip.wav: the file is cut short",
            "31.2 KB")
    refused(upload(client, wav_header(), url=url), 400, "holds no samples")


def test_wav_whose_data_chunk_is_cut_short(client):
    whole = encode(tone(1.0))
    refused(upload(client, whole[:len(whole) // 2]), 400, "the file is cut short",
            "promises 31.2 KB of audio data; 15.6 KB are there")


def test_wav_header_claiming_gigabytes(client):
    payload = pcm16(tone(0.5))
    for size in (0x7FFFFFFF, 0xFFFFFFFE):
        refused(upload(client, wav_header(data_size=size, riff_size=0xFFFFFFFF,
                                          payload_len=len(payload)) + payload), 400, "cut short", "GB")


def test_wav_with_placeholder_size_0xffffffff_streams_to_the_end(client, labels):
    payload = pcm16(tone(1.0))
    data = wav_header(data_size=0xFFFFFFFF, riff_size=0xFFFFFFFF, payload_len=len(payload)) + payload
    assert answered(upload(client, data), labels)["duration_s"] == 1.0


def test_rf64_claiming_a_terabyte(client):
    data = bytearray(encode(tone(0.5), RATE, "RF64"))
    ds64 = data.index(b"ds64") + 8
    data[ds64 + 8:ds64 + 16] = struct.pack("<Q", 2 ** 40)
    refused(upload(client, bytes(data)), 400, "cut short", "1.0 TB")


@pytest.mark.parametrize("data", [b"RIFF\x00\x00\x00\x00WAVEjunk", b"RIFF\x24\x00\x00\x00WAVEfmt garbage" + bytes(40),
                                  encode(tone(0.2))[:30]])
def test_wrong_wav_header(client, data):
    refused(upload(client, data, name="broken.wav"), 400, "broken.wav: not a readable audio file")


def test_random_bytes_after_a_valid_riff_header(client):
    rng = np.random.default_rng(5)
    refused(upload(client, b"RIFF\xff\xff\x00\x00WAVE" + rng.bytes(20_000)), 400, "not a readable audio file")
    refused(upload(client, encode(tone(1.0))[:44] + rng.bytes(20_000)), 400, "cut short")


def test_float_wav_whose_data_is_garbage(client):
    garbage = np.frombuffer(np.random.default_rng(6).bytes(64_000), np.uint32).copy()
    garbage[::50] = 0x7F800000                                       # +inf among the garbage
    data = wav_header(tag=3, bits=32, payload_len=garbage.nbytes) + garbage.tobytes()
    refused(upload(client, data), 400, "NaN or infinite samples")


@pytest.mark.parametrize("url", URLS)
def test_nan_and_inf_samples(client, url):
    for bad in (np.nan, np.inf, -np.inf):
        data = encode(np.array([0.0, bad, 0.1] * 1000, np.float32), RATE, "WAV", "FLOAT")
        refused(upload(client, data, url=url), 400, "NaN or infinite samples")


def test_truncated_flac(client):
    whole = valid_files()["flac"]
    for cut in (42, len(whole) // 2):
        refused(upload(client, whole[:cut], name="cut.flac"), 400, "cut.flac: the audio data is damaged or cut short")
    refused(upload(client, whole[:12], name="cut.flac"), 400, "not a readable audio file")


@pytest.mark.parametrize("kind", ["ogg-vorbis", "ogg-opus"])
def test_truncated_ogg(client, labels, kind):
    whole = valid_files()[kind]
    refused(upload(client, whole[:100], name="cut.ogg"), 400, "cut.ogg: ")
    r = upload(client, whole[:len(whole) * 3 // 4], name="cut.ogg")   # what survives whole is read
    if r.status_code == 200:
        answered(r, labels)
    else:
        refused(r, 400, "cut.ogg: ")


# ---- channels, sample formats, rates ---------------------------------------------------

@pytest.mark.parametrize("channels, fragment", [(0, "has no audio channels"),
                                                (33, "33 channels is more than Hark reads (at most 32)"),
                                                (65535, "65535 channels is more than Hark reads")])
def test_absurd_channel_counts(client, channels, fragment):
    data = wav_header(channels=channels, block_align=2, payload_len=32000) + bytes(32000)
    refused(upload(client, data), 400, fragment)


@pytest.mark.parametrize("url", URLS)
def test_big_endian_rifx_wav_is_classified_not_415(client, labels, url):
    buf = io.BytesIO()
    sf.write(buf, tone(1.0), RATE, format="WAV", subtype="PCM_16", endian="BIG")
    assert buf.getvalue()[:4] == b"RIFX"
    answered(upload(client, buf.getvalue(), name="big-endian.wav", url=url), labels)


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_every_wav_sample_format_is_classified(client, labels, subtype):
    body = answered(upload(client, encode(tone(1.0), RATE, "WAV", subtype)), labels)
    assert body["duration_s"] == 1.0


@pytest.mark.parametrize("rate", [8000, 11025, 16000, 22050, 32000, 44100, 48000, 88200, 96000, 176400, 192000])
def test_rates_from_8_to_192_khz_are_resampled(client, labels, rate):
    body = answered(upload(client, encode(tone(1.0, rate), rate)), labels)
    assert body["duration_s"] == 1.0


@pytest.mark.parametrize("rate", [1, 999, 384_001, 10_000_000])
def test_absurd_rates_are_400(client, rate):
    refused(upload(client, wav_header(rate=rate, payload_len=3200) + bytes(3200)), 400,
            f"unsupported sample rate {rate} Hz")


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("channels, fmt", [(2, "WAV"), (6, "WAVEX"), (8, "WAVEX"), (32, "WAVEX"), (2, "FLAC"),
                                           (2, "OGG")])
def test_stereo_and_multichannel_are_downmixed(client, labels, url, channels, fmt):
    subtype = {"OGG": "VORBIS"}.get(fmt, "PCM_16")
    body = answered(upload(client, encode(tone(1.0, channels=channels), RATE, fmt, subtype), url=url), labels)
    assert body["duration_s"] == 1.0


@pytest.mark.parametrize("url", URLS)
def test_silence_is_classified(client, labels, url):
    body = answered(upload(client, encode(np.zeros(RATE, np.float32)), url=url), labels)
    assert body["label"] == "_silence_"


@pytest.mark.parametrize("name", sorted(valid_files()))
def test_every_small_valid_file_is_classified(client, labels, name):
    answered(upload(client, valid_files()[name], name=f"{name}.bin"), labels)


def test_the_app_still_answers_after_all_of_it(client, labels):
    answered(upload(client, encode(tone(1.0))), labels)
    assert client.get("/api/health").status_code == 200
