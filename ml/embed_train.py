"""Training a head on the frozen speech embedding: variants, a cache, the fit.

The embedding cannot learn, so training-time augmentation happens before it:
each training clip is embedded as it is and as `VARIANTS` altered copies (time
shift, gain, then noise: white or pink, or 70% of the time a stretch of one of the
data set's own `_silence_` clips, the backgrounds it was recorded in; and half
of them heard as the detector hears a stream, with the noise and sometimes a
neighbouring word going on around the clip instead of silence), drawn from a
seed, so the same data gives the same arrays. Extraction is most of the cost, so
the arrays are cached on disk under a key of the data's content hash, the clip
list and the recipe: a second training on the same data skips it.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ml.audio import SAMPLE_RATE
from ml.config import SILENCE
from ml.embedding import EmbeddingSpec, SpeechEmbedding

VARIANTS = 5
SHIFT_S, GAIN_DB, SNR_DB = 0.2, (-12.0, 6.0), (5.0, 30.0)
BACKGROUND_SHARE, BACKGROUND_SNR_DB = 0.7, (0.0, 25.0)
CONTEXT_SHARE, NEIGHBOUR_SHARE, NEIGHBOUR_GAP_S = 0.5, 0.4, (0.0, 0.6)
RECIPE = 4      # bump when the variants or the extraction change: old cache entries are not reused
MAX_BACKGROUNDS = 2000   # 128 MB as one float32 array
HEAD_LABEL_SMOOTHING = 0.1   # the heads fit synthetic voices less tightly: better on real ones


def _noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """White or pink (1/f power) noise of unit RMS."""
    white = rng.normal(0.0, 1.0, n)
    if rng.random() < 0.5:
        spectrum = np.fft.rfft(white)
        spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1.0))
        white = np.fft.irfft(spectrum, n)
    return white / (np.sqrt(np.mean(white ** 2)) + 1e-12)


def _background(rng: np.random.Generator, backgrounds: np.ndarray, n: int) -> np.ndarray:
    """`n` samples of one background clip (rolled at random, repeated), at unit RMS."""
    clip = np.resize(np.roll(backgrounds[rng.integers(len(backgrounds))], int(rng.integers(n))), n)
    return clip / (np.sqrt(np.mean(clip.astype(np.float64) ** 2)) + 1e-12)


def variant(clip: np.ndarray, rng: np.random.Generator, backgrounds: np.ndarray | None = None,
            neighbours: np.ndarray | None = None, context: int = 0) -> np.ndarray:
    """One altered copy of a one-second clip, with `context` samples either side: shifted,
    louder or softer, with noise (a background clip's, when `backgrounds` has any, or white
    or pink). Half the copies are heard as in a stream: the noise goes on through the context,
    and some have part of a neighbouring clip (from `neighbours`) in it; the others have
    silence there, as a single clip is padded."""
    n = len(clip)
    shift = int(rng.uniform(-SHIFT_S, SHIFT_S) * SAMPLE_RATE)
    out = np.zeros(n + 2 * context, np.float32)
    out[context + max(shift, 0):context + n + min(shift, 0)] = clip[max(-shift, 0):n - max(shift, 0)]
    out *= 10 ** (rng.uniform(*GAIN_DB) / 20)
    level = np.sqrt(np.mean(out[context:context + n] ** 2))
    streamed = context > 0 and rng.random() < CONTEXT_SHARE
    if streamed and neighbours is not None and len(neighbours) and rng.random() < NEIGHBOUR_SHARE:
        other = neighbours[rng.integers(len(neighbours))] * 10 ** (rng.uniform(*GAIN_DB) / 20)
        gap = int(rng.uniform(*NEIGHBOUR_GAP_S) * SAMPLE_RATE)
        at = context - gap - n if rng.random() < 0.5 else context + n + gap
        lo, hi = max(at, 0), min(at + n, len(out))
        if hi > lo:
            out[lo:hi] += other[lo - at:hi - at]
    if level > 1e-5:     # silence stays silence plus its own noise
        part = slice(None) if streamed else slice(context, context + n)
        length = len(out[part])
        if backgrounds is not None and len(backgrounds) and rng.random() < BACKGROUND_SHARE:
            noise, snr = _background(rng, backgrounds, length), BACKGROUND_SNR_DB
        else:
            noise, snr = _noise(rng, length), SNR_DB
        out[part] += noise * level / 10 ** (rng.uniform(*snr) / 20)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def backgrounds_of(x: np.ndarray, y: np.ndarray, labels: list[str]) -> np.ndarray | None:
    """The audible `_silence_` clips among the training clips (None: the data has none), for
    the heads' variants and kws's background_mixer; an evenly spaced MAX_BACKGROUNDS of them
    where there are more (the mixer holds them as one array)."""
    if SILENCE not in labels:
        return None
    quiet = x[y == labels.index(SILENCE)]
    audible = quiet[np.sqrt(np.mean(quiet.astype(np.float64) ** 2, axis=1)) > 1e-4] if len(quiet) else quiet
    if len(audible) > MAX_BACKGROUNDS:
        audible = audible[np.linspace(0, len(audible) - 1, MAX_BACKGROUNDS).astype(int)]
    return audible if len(audible) else None


def cache_key(data_hash: str, paths: list[str], spec: EmbeddingSpec, seed: int, variants: int) -> str:
    text = json.dumps([RECIPE, data_hash, paths, spec.params(), seed, variants])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def embed_cached(x: np.ndarray, y: np.ndarray, key: str, cache: Path | None, spec: EmbeddingSpec,
                 variants: int, seed: int, log=print, threads: int = 2,
                 labels: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of the clips and of `variants` altered copies of each (see `variant`;
    `labels` names the label ids, so the `_silence_` clips serve as backgrounds), from the
    cache when it has them."""
    path = Path(cache) / f"{key}.npz" if cache else None
    if path is not None and path.is_file():
        with np.load(path) as stored:
            log(f"embeddings from the cache ({path.name})")
            return stored["e"].astype(np.float32), stored["y"]
    log(f"embedding {len(x) * (variants + 1)} clips ({len(x)} and {variants} variants of each)")
    embedding = SpeechEmbedding(spec, threads=threads)
    parts = [embedding.embed_batches(x, log=log)]
    rng = np.random.default_rng([seed, 42])
    backgrounds = backgrounds_of(x, y, labels) if labels else None
    context = int(spec.pad_s * SAMPLE_RATE)
    for _ in range(variants):
        copies = np.stack([variant(c, rng, backgrounds, x, context) for c in x]) if len(x) else x
        parts.append(embedding.embed_batches(copies, log=log))
    emb, ys = np.concatenate(parts), np.concatenate([y] * (variants + 1))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, e=emb.astype(np.float16), y=ys)
        tmp.replace(path)
        emb = emb.astype(np.float16).astype(np.float32)   # what a cached run reads back
    return emb, ys


def class_weights(y: np.ndarray, n: int) -> dict[int, float]:
    """Balanced weights: every label counts as much in the loss, whatever its clip count."""
    counts = np.bincount(y, minlength=n).astype(np.float64)
    return {i: float(len(y) / (n * c)) if c else 0.0 for i, c in enumerate(counts)}

