"""What a file that is not WAV, FLAC or OGG looks like, said to the person who sent it.

"unsupported file type" leaves someone who renamed notes.txt to notes.wav guessing;
"this file is text, not audio" does not. Only the first bytes are read (signatures
and whether they decode as text); the answer is a short phrase, never the content.
"""
from __future__ import annotations

SIGNATURES = (
    (b"PK\x03\x04", "a ZIP archive or an Office document"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"ID3", "MP3 audio, which Hark does not read"),
    (b"\x1aE\xdf\xa3", "a WebM or Matroska file, which Hark does not read"),
    (b"#!AMR", "AMR audio, which Hark does not read"),
    (b"\x7fELF", "a program, not audio"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
)
TEXT_SAMPLE = 2048


def describe(head: bytes) -> str | None:
    """A phrase for what the bytes are ("text", "a PNG image"...), or None when unknown."""
    for signature, what in SIGNATURES:
        if head.startswith(signature):
            return what
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return "an MP4 or M4A file (AAC audio or video), which Hark does not read"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return "MP3 or AAC audio, which Hark does not read"
    if len(head) >= 12 and head[:4] in (b"RIFF", b"RIFX"):
        return f"a RIFF file of type {head[8:12].decode('latin-1')!r}, not WAV audio"
    sample = head[:TEXT_SAMPLE]
    if b"\x00" in sample:
        return None
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as exc:     # a multi-byte character cut at the sample's end
        if exc.start < len(sample) - 4:
            return None
        text = sample[:exc.start].decode("utf-8")
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    if not text or printable < 0.95 * len(text):
        return None
    lowered = text.lstrip().lower()
    if lowered.startswith(("<!doctype html", "<html")):
        return "a web page (HTML), not audio"
    return "text, not audio"
