"""Continuous listening: every command in audio of any length, in a file or a live stream.

A classifier answers for one second; people speak for longer. The detector
slides one-second windows over the audio at a short hop (computed in batches
through `Classifier.predict_windows`, so it serves every kind of run, ensembles
included: features once per batch, not per window, and a head on the speech
embedding hearing each window in its surroundings, as it was trained to),
averages each window's probabilities with its neighbours', and follows each
word's probability over time:

- a command is a *run* of consecutive windows where it is the most likely label
  and above its threshold;
- partial words are refused twice: a window with sound right at its edge (see
  `cuts_word`) holds only part of a word (the end of "go" sounds like "up") and
  cannot start or extend a run, and a run shorter than `min_windows` is dropped;
- `_unknown_` (a word outside the vocabulary) gets its own weight here, so a
  run may be stricter about other words than single-clip serving is;
- runs close to each other compete: the one with the larger area (probability
  summed over its windows) wins; after a detection no other is made for
  `refractory_s`; each decision waits `wait_s` past the word for a better rival.

A detection is `{label, time_s, confidence}`: the centre of the word (the
probability-weighted centre of its run's windows) and the run's peak smoothed
probability. Files and live streams run the same code: a file is one stream fed
at once and finished. A stream's whole memory is a `StreamState` that the caller
keeps and passes back in (`to_dict`/`from_dict` make it JSON for a web client),
so nothing is kept between recordings. Thresholds and timings are a
`DetectorConfig`: defaults here, overridden by a run's config.json `detector`
section. No TensorFlow: the classifier passed in does the model's work.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from ml.audio import CLIP_SAMPLES, SAMPLE_RATE, to_model_rate
from ml.config import SILENCE, UNKNOWN

MAX_HOP_S = 0.1
FRAME = 160                  # 10 ms: the loudness frames of the partial-word check
FRAME_S = FRAME / SAMPLE_RATE
FLOOR_QUANTILE = 0.2         # a window's background level: its quieter frames
EDGE_PAD_S = 0.3             # silence heard before a stream begins and after it ends
STATE_VERSION = 1


class DetectorError(ValueError):
    """A detector setting or stream state that cannot be used; the message says why."""


SENSITIVITIES = ("low", "medium", "high")   # more: more commands heard, more false alarms
DEFAULT_SENSITIVITY = "medium"


def check_sensitivity(name) -> str:
    if name not in SENSITIVITIES:
        raise DetectorError(f"sensitivity must be one of {', '.join(SENSITIVITIES)}, not {name!r}")
    return name


def presets(section: dict) -> dict[str, dict]:
    """A run's sensitivity presets: its `detector` section's `sensitivity` (each preset
    settings over the section's, and `measured`: what the curve bench found at it), or,
    for a run without them, medium as its settings say and low and high moving the
    threshold half-way to 1 and down by a quarter."""
    given = section.get("sensitivity")
    if given is None:
        t = float(section.get("threshold", DetectorConfig.threshold))
        return {"low": {"threshold": round(t + (1 - t) / 2, 3)}, "medium": {},
                "high": {"threshold": round(t * 0.75, 3)}}
    if not (isinstance(given, dict) and set(given) == set(SENSITIVITIES)
            and all(isinstance(v, dict) for v in given.values())):
        raise DetectorError("config.json: detector 'sensitivity' must hold an object of settings "
                            f"for each of {', '.join(SENSITIVITIES)}")
    return given


@dataclass(frozen=True)
class DetectorConfig:
    """How the detector decides; `for_run` applies a run's config.json `detector` section."""
    hop_s: float = 0.1            # between window starts (10 ms frames, at most MAX_HOP_S)
    smooth: int = 5               # windows averaged, centred (odd)
    threshold: float = 0.8        # smoothed probability a command must reach ...
    thresholds: dict = field(default_factory=dict)   # ... or its own, per label
    min_windows: int = 2          # shorter runs held only part of a word
    refractory_s: float = 1.0     # no detection this soon after another
    wait_s: float = 0.5           # how long past a word's centre a rival may still win
    edge_s: float = 0.05          # a window whose first or last edge_s is as loud as ...
    edge_ratio: float = 0.3       # ... this share of its loudest part cuts a word (0: off)
    unknown_weight: float | None = None   # weight of _unknown_ (None: as the run serves it)
    batch: int = 256              # windows per model call

    def __post_init__(self):
        def bad(name, why):
            raise DetectorError(f"detector setting {name}: {why}")

        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "thresholds":
                if not isinstance(value, dict):
                    bad(f.name, "must be an object of label: threshold")
                for label, t in value.items():
                    if not isinstance(label, str) or not _number(t) or not 0 < t <= 1:
                        bad(f"thresholds[{label!r}]", "must be a number in (0, 1]")
            elif f.name == "unknown_weight":
                if value is not None and (not _number(value) or not 0 < value <= 1e3):
                    bad(f.name, "must be a positive number (or null)")
            elif not _number(value):
                bad(f.name, "must be a number")
        if not (0.01 <= self.hop_s <= MAX_HOP_S and abs(self.hop_s * 100 - round(self.hop_s * 100)) < 1e-9):
            bad("hop_s", f"must be a whole number of 10 ms frames from 0.01 to {MAX_HOP_S} s")
        if not (isinstance(self.smooth, int) and 1 <= self.smooth <= 15 and self.smooth % 2):
            bad("smooth", "must be an odd whole number of windows from 1 to 15")
        if not 0 < self.threshold <= 1:
            bad("threshold", "must be in (0, 1]")
        if not (isinstance(self.min_windows, int) and 1 <= self.min_windows <= 50):
            bad("min_windows", "must be a whole number from 1 to 50")
        if not 0 <= self.refractory_s <= 10:
            bad("refractory_s", "must be between 0 and 10 s")
        if not 0 <= self.wait_s <= 5:
            bad("wait_s", "must be between 0 and 5 s")
        if not FRAME_S <= self.edge_s <= 0.4:
            bad("edge_s", f"must be between {FRAME_S} and 0.4 s")
        if not 0 <= self.edge_ratio <= 1:
            bad("edge_ratio", "must be between 0 (off) and 1")
        if not (isinstance(self.batch, int) and 1 <= self.batch <= 4096):
            bad("batch", "must be a whole number from 1 to 4096")

    @classmethod
    def from_dict(cls, values: dict | None) -> DetectorConfig:
        """Defaults overridden by `values`; unknown keys are refused by name."""
        values = dict(values or {})
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise DetectorError(f"unknown detector setting(s): {', '.join(map(str, unknown))} "
                                f"(known: {', '.join(sorted(names))})")
        return cls(**values)

    @classmethod
    def for_run(cls, run_config: dict, overrides: dict | None = None,
                sensitivity: str = DEFAULT_SENSITIVITY) -> DetectorConfig:
        """The defaults, then the run's own `detector` section, then its `sensitivity`
        preset, then `overrides` (e.g. an expert's threshold)."""
        section = run_config.get("detector") or {}
        if not isinstance(section, dict):
            raise DetectorError("config.json: 'detector' must be an object of settings")
        section = dict(section)
        preset = presets(section)[check_sensitivity(sensitivity)]
        section.pop("sensitivity", None)
        settings = {k: v for k, v in preset.items() if k != "measured"}
        return cls.from_dict({**section, **settings, **(overrides or {})})

    def to_dict(self) -> dict:
        return asdict(self)

    def threshold_of(self, label: str) -> float:
        return float(self.thresholds.get(label, self.threshold))


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass
class Detection:
    label: str
    time_s: float          # centre of the word, from the start of the stream
    confidence: float      # peak smoothed probability of its run

    def to_dict(self) -> dict:
        return {"label": self.label, "time_s": round(self.time_s, 3),
                "confidence": round(self.confidence, 4)}


@dataclass
class _Run:
    """Consecutive windows where one command leads and passes its threshold."""
    label: int
    n: int = 0
    area: float = 0.0        # sum of its smoothed probability
    moment: float = 0.0      # sum of probability x window centre
    peak: float = 0.0
    end: float = 0.0         # centre of its last window

    def add(self, t: float, p: float) -> None:
        self.n += 1
        self.area += p
        self.moment += p * t
        self.peak = max(self.peak, p)
        self.end = t

    @property
    def time(self) -> float:
        return self.moment / self.area


@dataclass
class StreamState:
    """Everything a stream remembers between chunks; a caller keeps it and passes it back.

    `next_sample` is where (in 16 kHz samples from the stream's start) the next window
    begins (negative at first: the silence the detector puts before a stream).
    `tail` is the audio held from the next window's context on (see `Detector.held_from`:
    not in `to_dict`, a caller that keeps the audio resends it).
    """
    # A state comes back from clients: every number in it is bounded (times, probabilities,
    # counters), so none can overflow into Infinity or promise a next_s that /api/detect's
    # start_s (at most MAX_SECONDS) would then refuse. 10^9 s is 31 years of stream.
    MAX_SECONDS = 1e9
    next_sample: int = 0
    tail: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32), repr=False)
    raw: list = field(default_factory=list)        # [time, probabilities, cut] of recent windows
    fresh: int = 0                                 # how many of `raw` are not smoothed yet
    run: _Run | None = None                        # the run now open
    candidates: list = field(default_factory=list)  # closed runs waiting for their decision
    last_time: float | None = None                 # time of the last detection
    now: float = 0.0                               # centre of the last smoothed window
    latest: list | None = None                     # the last smoothed probabilities
    windows: int = 0                               # windows computed in all

    def to_dict(self) -> dict:
        """JSON for a caller to keep (floats exact; no audio: it resends from `held_from`)."""
        return {"v": STATE_VERSION, "next_sample": self.next_sample,
                "raw": [[t, [float(p) for p in row], c] for t, row, c in self.raw],
                "fresh": self.fresh,
                "run": None if self.run is None else asdict(self.run),
                "candidates": [asdict(c) for c in self.candidates], "last_time": self.last_time,
                "now": self.now, "windows": self.windows}

    @classmethod
    def from_dict(cls, data, labels: int, smooth: int) -> StreamState:
        """A state sent back by a caller, checked: anything malformed is a DetectorError."""
        try:
            if not isinstance(data, dict) or data.get("v") != STATE_VERSION:
                raise ValueError("not a stream state of this version")
            times = (-1.0, cls.MAX_SECONDS + 1.0)      # window centres: next_sample's range, +/- 1 s
            raw: list[list] = [[_finite(t, *times), [_finite(p, 0.0, 1.0) for p in row], bool(c)]
                               for t, row, c in data["raw"]]
            if len(raw) > smooth or any(len(row) != labels for _, row, _ in raw):
                raise ValueError("its probabilities do not fit this model")
            fresh = int(data["fresh"])
            runs = [data["run"]] if data["run"] is not None else []
            candidates = [_run_of(c, labels, times) for c in data["candidates"]]
            if len(candidates) > 64:
                raise ValueError("too many open candidates")
            state = cls(next_sample=int(data["next_sample"]), raw=raw, fresh=fresh,
                        run=_run_of(runs[0], labels, times) if runs else None, candidates=candidates,
                        last_time=None if data["last_time"] is None else _finite(data["last_time"], *times),
                        now=_finite(data["now"], *times), windows=int(data["windows"]))
            if not (-CLIP_SAMPLES <= state.next_sample <= cls.MAX_SECONDS * SAMPLE_RATE
                    and 0 <= fresh <= len(raw) and 0 <= state.windows < 2 ** 53):
                raise ValueError("its counters are out of range")
            return state
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise DetectorError(f"bad stream state: {exc}") from None


def _finite(x, low: float = -math.inf, high: float = math.inf) -> float:
    if not _number(x):
        raise ValueError(f"{x!r} is not a finite number")
    if not low <= x <= high:
        raise ValueError(f"{x!r} is not a number from {low:g} to {high:g}")
    return float(x)


def _run_of(d: dict, labels: int, times: tuple[float, float] = (-math.inf, math.inf)) -> _Run:
    """A run of a state sent back: its probabilities in [0, 1], its times (end, and moment / area)
    within `times`."""
    run = _Run(label=int(d["label"]), n=int(d["n"]), area=_finite(d["area"]),
               moment=_finite(d["moment"]), peak=_finite(d["peak"], 0.0, 1.0), end=_finite(d["end"], *times))
    if not (0 <= run.label < labels and 1 <= run.n < 2 ** 53 and 0 < run.area <= run.n):
        raise ValueError("a run in it does not fit this model")
    _finite(run.moment / run.area, *times)
    return run


def frame_energy(clips: np.ndarray) -> np.ndarray:
    """Mean square of every 10 ms of each one-second window: shape (windows, 100)."""
    clips = np.asarray(clips, np.float32).reshape(len(clips), -1, FRAME)
    return np.einsum("wfs,wfs->wf", clips, clips, dtype=np.float64) / FRAME


def window_energy(audio: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """frame_energy of the one-second windows of `audio` that begin at `starts` (whole 10 ms
    frames): the frames of the audio computed once, each window's a slice of them (the same
    numbers, without copying every window's second)."""
    frames = frame_energy(audio[np.newaxis, :len(audio) // FRAME * FRAME])[0]
    return frames[np.asarray(starts)[:, np.newaxis] // FRAME + np.arange(CLIP_SAMPLES // FRAME)]


def cuts_word(energy: np.ndarray, config: DetectorConfig) -> np.ndarray:
    """Which windows cut a word at an edge: sound as loud as `edge_ratio` of the window's
    loudest 10 ms (both above its background) in its first or last `edge_s`.

    Such a window hears part of a word, and a part often sounds like another word
    (the end of "left" like "up"), so it may not start or extend a detection.
    """
    energy = np.asarray(energy, np.float64)
    if config.edge_ratio <= 0 or not energy.size:
        return np.zeros(len(energy), bool)
    k = max(1, round(config.edge_s / FRAME_S))
    floor = np.quantile(energy, FLOOR_QUANTILE, axis=1)
    edge = np.maximum(energy[:, :k].max(axis=1), energy[:, -k:].max(axis=1))
    return (edge - floor) > config.edge_ratio * (energy.max(axis=1) - floor)


class Decider:
    """The decision half of the detector: window probabilities in, detections out.

    Knows the labels and the settings, not the model, so it can be driven by any
    sequence of probabilities (the tests feed it made-up ones).
    """

    def __init__(self, labels: list[str], config: DetectorConfig | None = None,
                 served_unknown_weight: float = 1.0):
        self.labels = list(labels)
        self.config = config or DetectorConfig()
        self.hop = max(1, round(self.config.hop_s * SAMPLE_RATE))
        self.half = self.config.smooth // 2
        self.commands = np.array([label not in (SILENCE, UNKNOWN) for label in self.labels])
        self.thresholds = np.array([self.config.threshold_of(label) for label in self.labels])
        unknown = [i for i, label in enumerate(self.labels) if label == UNKNOWN]
        self.reweight = None
        if unknown and self.config.unknown_weight is not None:
            self.reweight = np.ones(len(self.labels))
            self.reweight[unknown[0]] = self.config.unknown_weight / max(served_unknown_weight, 1e-9)

    def rows(self, state: StreamState, times: np.ndarray, probs: np.ndarray,
             cut=None) -> list[Detection]:
        """Take the probabilities of consecutive windows centred at `times` (s).

        `cut[i]` says window i cuts a word at its edge (see `cuts_word`): it may not
        start or extend a run.
        """
        probs = np.asarray(probs, np.float64)
        if self.reweight is not None:
            probs = probs * self.reweight
            probs /= np.maximum(probs.sum(axis=1, keepdims=True), 1e-12)
        cut = np.zeros(len(probs), bool) if cut is None else np.asarray(cut, bool)
        out = []
        for t, row, c in zip(times, probs, cut):
            state.raw.append([float(t), row.tolist(), bool(c)])
            state.fresh += 1
            state.windows += 1
            if state.fresh > self.half:
                out += self._smooth_one(state, len(state.raw) - 1 - self.half)
                keep = 2 * self.half
                state.raw = state.raw[-keep:] if keep else []
        return out

    def end_segment(self, state: StreamState) -> list[Detection]:
        """The audio stops (end of file, or a gap in a stream): decide everything open."""
        out = []
        for pos in range(len(state.raw) - state.fresh, len(state.raw)):
            out += self._smooth_one(state, pos)
        state.raw, state.fresh = [], 0
        self._close_run(state)
        out += self._decide(state, final=True)
        return out

    def _smooth_one(self, state: StreamState, pos: int) -> list[Detection]:
        """Average the window at `pos` of state.raw with its neighbours and step on it."""
        neighbours = state.raw[max(0, pos - self.half):pos + self.half + 1]
        t, _, cut = state.raw[pos]
        smoothed = np.mean([row for _, row, _ in neighbours], axis=0)
        state.fresh -= 1
        return self._step(state, t, smoothed, cut)

    def _step(self, state: StreamState, t: float, p: np.ndarray, cut: bool) -> list[Detection]:
        state.now, state.latest = t, p.tolist()
        top = int(p.argmax())
        on = bool(self.commands[top] and p[top] >= self.thresholds[top] and not cut)
        if state.run is not None and (not on or state.run.label != top):
            self._close_run(state)
        if on:
            if state.run is None:
                state.run = _Run(label=top)
            state.run.add(t, float(p[top]))
        return self._decide(state)

    def _close_run(self, state: StreamState) -> None:
        run, state.run = state.run, None
        if run is None or run.n < self.config.min_windows:
            return        # a glimpse: part of a word
        if state.last_time is not None and run.time - state.last_time < self.config.refractory_s:
            return        # too soon after the last detection
        state.candidates.append(run)

    def _decide(self, state: StreamState, final: bool = False) -> list[Detection]:
        """Emit each candidate whose wait is over and that no rival near it beats."""
        cfg, out = self.config, []
        state.candidates.sort(key=lambda c: c.time)
        while state.candidates:
            c = state.candidates[0]
            if not final and state.now < c.time + cfg.wait_s:
                break
            rivals = [r for r in state.candidates[1:] + ([state.run] if state.run else [])
                      if abs(r.time - c.time) < cfg.refractory_s]
            state.candidates.pop(0)
            if not self.commands[c.label] or any(r.area > c.area for r in rivals):
                continue      # a stronger run nearby decides instead
            if state.last_time is not None and c.time - state.last_time < cfg.refractory_s:
                continue
            state.last_time = c.time
            out.append(Detection(self.labels[c.label], c.time, c.peak))
            state.candidates = [r for r in state.candidates
                                if abs(r.time - c.time) >= cfg.refractory_s]
        return out


class Detector:
    """A classifier (any run, ensembles included) turned into a command detector.

    Windows go through `Classifier.predict_windows`: features computed once over the
    audio held, and an embedding model hearing each window's surroundings (its `context`,
    half a second each side), so the detector holds that much audio before the next window
    and waits for that much after it.
    """

    def __init__(self, classifier, config: DetectorConfig | None = None):
        self.classifier = classifier
        self.config = config or DetectorConfig.for_run(classifier.config)
        self.decider = Decider(classifier.labels, self.config,
                               float(classifier.config.get("unknown_weight", 1.0) or 1.0))
        self.hop = self.decider.hop
        self.pad = round(EDGE_PAD_S * SAMPLE_RATE)
        self.context = int(classifier.context)

    def detect(self, wave: np.ndarray, rate: int = SAMPLE_RATE) -> list[Detection]:
        """Every command in one recording (any rate, any length)."""
        state = StreamState()
        found = self.feed(state, to_model_rate(np.asarray(wave, np.float32), rate))
        return found + self.finish(state)

    def held_from(self, state: StreamState) -> int:
        """Where the audio the stream holds begins (samples from the stream's start): the next
        window's start less its context. A caller that keeps the audio resends from here."""
        return state.next_sample - self.context

    def feed(self, state: StreamState, samples: np.ndarray, start: int | None = None) -> list[Detection]:
        """Give the stream more 16 kHz audio; returns the detections now decided.

        `start` (in samples from the stream's start) says where `samples` begin; by
        default right after the audio given before. Audio already held is skipped (a
        caller that resends overlap); a start past the end of what is held is a gap:
        what was open is decided and the stream goes on from there.
        """
        samples = np.asarray(samples, np.float32).ravel()
        out = []
        begins = state.windows == 0 and state.next_sample == 0 and not len(state.tail)
        if not begins and not len(state.tail) and self.held_from(state) < 0:
            # A state from to_dict: the silence before the stream was not sent back; rebuild it.
            state.tail = np.zeros(-self.held_from(state), np.float32)
        if start is not None:
            start = int(start)
            if start < 0:
                raise DetectorError("a stream's audio cannot start before its beginning")
            expected = 0 if begins else self.held_from(state) + len(state.tail)
            if start > expected:
                out += self.decider.end_segment(state)
                aligned = -(-(start + self.context) // self.hop) * self.hop
                samples = samples[aligned - self.context - start:]
                state.next_sample, state.tail = aligned, np.zeros(0, np.float32)
                begins = False
            elif start < expected:
                samples = samples[expected - start:]
        if begins:
            # The stream begins: silence before it, so a word at once gets its windows too.
            samples = np.concatenate([np.zeros(self.pad + self.context, np.float32), samples])
            state.next_sample = -self.pad
        state.tail = np.concatenate([state.tail, samples]) if len(state.tail) else samples
        return out + self._advance(state)

    def finish(self, state: StreamState) -> list[Detection]:
        """The stream has ended: silence after it (as before it), then every decision."""
        extra = self.pad + self.context
        if state.windows == 0:   # a short clip: enough silence for its word to fill a few windows
            extra = max(extra, CLIP_SAMPLES + 2 * (self.pad + self.context) - len(state.tail))
        state.tail = np.concatenate([state.tail, np.zeros(extra, np.float32)])
        out = self._advance(state)
        state.tail = np.zeros(0, np.float32)
        return out + self.decider.end_segment(state)

    def _advance(self, state: StreamState) -> list[Detection]:
        """Every whole window (with its context) of the audio held, then drop what no later
        window needs."""
        reach = CLIP_SAMPLES + 2 * self.context
        if len(state.tail) < reach:
            return []
        count = (len(state.tail) - reach) // self.hop + 1
        out = []
        for i in range(0, count, self.config.batch):
            starts = self.context + np.arange(i, min(i + self.config.batch, count)) * self.hop
            span = state.tail[:starts[-1] + CLIP_SAMPLES + self.context]
            probs = self.classifier.predict_windows(span, starts, self.held_from(state))
            times = (state.next_sample + starts - self.context + CLIP_SAMPLES / 2) / SAMPLE_RATE
            out += self.decider.rows(state, times, probs, cuts_word(window_energy(span, starts), self.config))
        used = count * self.hop
        state.tail = state.tail[used:].copy()
        state.next_sample += used
        return out
