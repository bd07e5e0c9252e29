"""The architectures of ml.models.ARCHS, read without importing TensorFlow.

Web workers never import TensorFlow (it would cost seconds and hundreds of MB
per worker), so the admin form learns the registry by reading the `Arch(...)`
entries of ml/models.py. tests/test_jobs.py checks this list equals ARCHS.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import lru_cache

from webapp.settings import ROOT


@dataclass(frozen=True)
class ArchInfo:
    name: str
    features: str
    augment: bool
    about: str


@lru_cache(maxsize=1)
def architectures() -> dict[str, ArchInfo]:
    tree = ast.parse((ROOT / "ml" / "models.py").read_text())
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Arch":
            values = [a.value if isinstance(a, ast.Constant) else None for a in node.args]
            if len(values) >= 5 and isinstance(values[0], str):
                found[values[0]] = ArchInfo(values[0], values[1], bool(values[2]), values[4] or "")
    return found
