"""How labels read to people, and what a result says about itself.

Silence and the catch-all class are results in their own right, and a weak
guess must read as a weak guess, never as a confident command.
"""
from __future__ import annotations

from ml.config import SILENCE, UNKNOWN

DISPLAY_NAMES = {SILENCE: "silence", UNKNOWN: "not a command"}


def display_name(label: str) -> str:
    return DISPLAY_NAMES.get(label, label)


def display_names(labels) -> dict[str, str]:
    return {label: display_name(label) for label in labels}


def verdict(label: str, confidence: float, low_confidence: float) -> dict:
    """{'kind': word|silence|unknown|unsure, 'text': one plain sentence}."""
    pct = f"{confidence:.0%}"
    if label == SILENCE:
        return {"kind": "silence", "text": f"Silence: no word heard in this clip ({pct} sure)."}
    if label == UNKNOWN:
        return {"kind": "unknown",
                "text": f"Not a command: something was said, but not one of the words ({pct} sure)."}
    if confidence < low_confidence:
        return {"kind": "unsure",
                "text": f"Not sure: the best guess is \u201c{label}\u201d, at only {pct} confidence."}
    return {"kind": "word", "text": f"Heard \u201c{label}\u201d with {pct} confidence."}
