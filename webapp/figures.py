"""Every chart of the site, built here as plain Plotly JSON (`data`, `layout`, `config`).

Pages fetch these dicts and hand them to `Plotly.newPlot`, so the look of all
charts lives in one module. They are built from plain dicts rather than
plotly.graph_objects (which validates every property and costs tens of ms)
and are kept small: the waveform is decimated to a min/max envelope and the
spectrogram is rounded to 0.1 dB.
"""
from __future__ import annotations

import numpy as np

from ml.audio import SAMPLE_RATE
from ml.config import FEATURES, FeatureSpec, mel_edges_hz
from webapp.labels import display_name

ACCENT, MUTED, WINDOW = "#4338ca", "#cbd5e1", "rgba(67,56,202,0.10)"
WAVE_POINTS = 600          # envelope buckets: two points each, plenty for a ~700 px chart
CONFIG = {"displaylogo": False, "responsive": True,
          "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d", "toImage"]}


def _rounded(values: np.ndarray, decimals: int) -> list:
    """Plain floats with few digits: float32 values would print 17 digits each."""
    return np.round(np.asarray(values, np.float64), decimals).tolist()


def _layout(title: str, height: int, **extra) -> dict:
    layout = {
        "title": {"text": title, "x": 0, "xanchor": "left", "font": {"size": 14}},
        "height": height, "margin": {"l": 56, "r": 16, "t": 36, "b": 44},
        "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)",
        "font": {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif",
                 "size": 12, "color": "#1e293b"},
        "showlegend": False,
    }
    layout.update(extra)
    return layout


def _axis(title: str, **extra) -> dict:
    return {"title": {"text": title}, "gridcolor": "#e2e8f0", "zeroline": False, **extra}


def envelope(wave: np.ndarray, rate: int, points: int = WAVE_POINTS) -> tuple[float, list]:
    """(seconds between values, values) small enough to draw.

    A long clip becomes a min/max pair per bucket: the outline a full-resolution
    plot would show, in a fraction of the points.
    """
    n = len(wave)
    if n <= 2 * points:
        return 1.0 / rate, _rounded(wave, 4)
    edges = np.linspace(0, n, points + 1).astype(int)[:-1]
    pairs = np.column_stack([np.minimum.reduceat(wave, edges), np.maximum.reduceat(wave, edges)])
    return n / rate / (2 * points), _rounded(pairs.ravel(), 4)


def waveform(wave: np.ndarray, rate: int, window_start_s: float | None = None) -> dict:
    """The recording over time, with the one second the model classified shaded."""
    step, values = envelope(np.asarray(wave, np.float32), rate)
    duration = len(wave) / rate
    shapes, annotations = [], []
    if window_start_s is not None:
        end = min(window_start_s + 1.0, max(duration, 1.0))
        shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": window_start_s,
                       "x1": end, "y0": 0, "y1": 1, "fillcolor": WINDOW, "line": {"width": 0},
                       "layer": "below"})
        annotations.append({"x": (window_start_s + end) / 2, "y": 1, "xref": "x", "yref": "paper",
                            "yanchor": "bottom", "text": "classified second", "showarrow": False,
                            "font": {"size": 11, "color": ACCENT}})
    # At least +-0.1 full scale, so room noise does not fill the chart like a word.
    peak = float(max(np.abs(wave).max(initial=0.0), 0.1))
    return {
        "data": [{"type": "scatter", "x0": step / 2, "dx": step, "y": values,
                  "mode": "lines", "line": {"color": ACCENT, "width": 1},
                  "hovertemplate": "%{x:.3f} s<br>%{y:.3f}<extra></extra>"}],
        "layout": _layout("Waveform", 220, shapes=shapes, annotations=annotations,
                          xaxis=_axis("time (s)", range=[0, max(duration, 1.0)]),
                          yaxis=_axis("amplitude", range=[-peak * 1.05, peak * 1.05])),
        "config": CONFIG,
    }


def timeline(wave: np.ndarray, rate: int, detections: list[dict]) -> dict:
    """A long recording as its waveform with a labelled marker at each command found.

    `detections` are ml.detect's dicts ({label, time_s, confidence}); neighbouring
    labels alternate between two heights so close words stay readable.
    """
    step, values = envelope(np.asarray(wave, np.float32), rate)
    duration = max(len(wave) / rate, 1.0)
    peak = float(max(np.abs(wave).max(initial=0.0), 0.1))
    shapes, annotations = [], []
    for i, d in enumerate(detections):
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": d["time_s"],
                       "x1": d["time_s"], "y0": 0, "y1": 1,
                       "line": {"color": "#f59e0b", "width": 2}})
        annotations.append({"x": d["time_s"], "y": 1.0 if i % 2 == 0 else 0.88, "xref": "x",
                            "yref": "paper", "yanchor": "bottom", "showarrow": False,
                            "text": f"<b>{display_name(d['label'])}</b> {d['confidence']:.0%}",
                            "font": {"size": 12, "color": "#92400e"},
                            "bgcolor": "rgba(255,255,255,0.85)"})
    marks = {"type": "scatter", "mode": "markers", "x": [d["time_s"] for d in detections],
             "y": [0.0] * len(detections), "marker": {"color": "#f59e0b", "size": 9},
             "text": [display_name(d["label"]) for d in detections],
             "customdata": [round(d["confidence"], 4) for d in detections],
             "hovertemplate": "%{text} at %{x:.2f} s<br>%{customdata:.0%} sure<extra></extra>"}
    return {
        "data": [{"type": "scatter", "x0": step / 2, "dx": step, "y": values, "mode": "lines",
                  "line": {"color": ACCENT, "width": 1}, "hoverinfo": "skip"}, marks],
        "layout": _layout(f"Words found: {len(detections)}", 260, shapes=shapes,
                          annotations=annotations, margin={"l": 56, "r": 16, "t": 56, "b": 44},
                          xaxis=_axis("time (s)", range=[0, duration]),
                          yaxis=_axis("amplitude", range=[-peak * 1.05, peak * 1.05])),
        "config": CONFIG,
    }


def clip_logmel(clip: np.ndarray) -> tuple[np.ndarray, FeatureSpec]:
    """Log-mel energies of a clip (natural-log power, framed like FEATURES["logmel"]) and their
    framing: the picture for a model whose own input is no picture (the raw waveform)."""
    s = FEATURES["logmel"]
    frames = 1 + (len(clip) - s.frame_length) // s.frame_step
    index = np.arange(s.frame_length)[None, :] + s.frame_step * np.arange(frames)[:, None]
    power = np.abs(np.fft.rfft(clip[index] * np.hanning(s.frame_length), s.fft_length)) ** 2
    edges = mel_edges_hz(s.low_hz, s.high_hz, s.bins)
    hz = np.fft.rfftfreq(s.fft_length, 1.0 / SAMPLE_RATE)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    filters = np.clip(np.minimum((hz - lo) / (mid - lo), (hi - hz) / (hi - mid)), 0, None)
    return np.log(power @ filters.T + 1e-6), s


def spectrogram(times: np.ndarray, freqs: np.ndarray, values: np.ndarray, kind: str,
                offset_s: float = 0.0, title: str | None = None) -> dict:
    """The model's own input (`Prediction.features`), in dB, time by frequency.

    `offset_s` places the classified second on the recording's own time axis,
    so the spectrogram lines up with the waveform.
    """
    if kind == "logmel":   # already natural-log power: rescale to dB, same picture
        z, unit = values * (10.0 / np.log(10.0)), "dB"
        title = title or "Log-mel spectrogram (model input)"
    else:                  # |STFT| magnitude: log-scaled for display only
        z, unit = 20.0 * np.log10(values + 1e-6), "dB"
        title = title or "Spectrogram (model input, log scale)"
    return {
        "data": [{"type": "heatmap", "x": _rounded(times + offset_s, 4), "y": _rounded(freqs, 1),
                  "z": _rounded(z.T, 1),
                  "colorscale": "Viridis", "colorbar": {"title": {"text": unit}, "thickness": 12},
                  "hovertemplate": "%{x:.2f} s<br>%{y:.0f} Hz<br>%{z:.1f} dB<extra></extra>"}],
        "layout": _layout(title, 260, xaxis=_axis("time (s)"), yaxis=_axis("frequency (Hz)")),
        "config": CONFIG,
    }


def probabilities(probs: dict[str, float], predicted: str) -> dict:
    """One horizontal bar per label, most likely on top, the prediction highlighted."""
    ordered = sorted(probs.items(), key=lambda kv: kv[1])
    names = [display_name(label) for label, _ in ordered]
    values = [round(p, 4) for _, p in ordered]
    colors = [ACCENT if label == predicted else MUTED for label, _ in ordered]
    return {
        "data": [{"type": "bar", "orientation": "h", "x": values, "y": names,
                  "marker": {"color": colors}, "text": [f"{p:.0%}" for p in values],
                  "textposition": "outside", "cliponaxis": False,
                  "hovertemplate": "%{y}: %{x:.1%}<extra></extra>"}],
        "layout": _layout("Probabilities", max(180, 40 + 26 * len(names)),
                          margin={"l": 100, "r": 40, "t": 36, "b": 36},
                          xaxis=_axis("", range=[0, 1], tickformat=".0%"),
                          yaxis={"automargin": True}),
        "config": CONFIG,
    }


def result_figures(classifier, result) -> dict:
    """The three charts of a result view, for one classified clip."""
    p = result.prediction
    spec, values, title = classifier.feature_spec, p.features, None
    if spec.kind == "wave":    # the model's input is the waveform itself: draw a log-mel of it
        values, spec = clip_logmel(p.clip)
        title = "Log-mel spectrogram of the clip (this model reads the raw waveform)"
    times, freqs = spec.axes()
    return {"waveform": waveform(result.wave, result.rate, p.window_start_s),
            "spectrogram": spectrogram(times, freqs, values, spec.kind, p.window_start_s, title),
            "probabilities": probabilities(p.probabilities, p.label)}


# ---- evaluation views (gallery, compare) ------------------------------------------------

def per_class_rows(report: dict) -> list[dict]:
    """The per-class table: one row per label, people's names, figures as given."""
    rows = []
    for label in report.get("labels", []):
        c = report.get("per_class", {}).get(label, {})
        rows.append({"label": label, "name": display_name(label),
                     "precision": c.get("precision", 0.0), "recall": c.get("recall", 0.0),
                     "f1": c.get("f1", 0.0), "support": c.get("support", 0)})
    return rows


def confusion_matrix(report: dict) -> dict:
    """True label by predicted label; colour is the share of the true class, text the count.

    Colouring by row keeps a small class readable next to a big one. Each cell's
    `customdata` is [true label, predicted label] so a click can filter the gallery.
    """
    labels = report.get("labels", [])
    names = [display_name(label) for label in labels]
    counts = np.asarray(report.get("confusion", []), dtype=np.int64).reshape(len(labels), len(labels))
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    custom = [[[t, p] for p in labels] for t in labels]
    text = [[str(v) if v else "" for v in row] for row in counts.tolist()]
    size = max(260, 90 + 34 * len(labels))
    return {
        "data": [{"type": "heatmap", "x": names, "y": names, "z": _rounded(shares, 4),
                  "zmin": 0, "zmax": 1, "text": text, "texttemplate": "%{text}",
                  "customdata": custom, "xgap": 1, "ygap": 1,
                  "colorscale": [[0, "#f8fafc"], [0.0001, "#e0e7ff"], [1, ACCENT]],
                  "showscale": False,
                  "hovertemplate": "true %{y}, predicted %{x}<br>%{text} clips"
                                   " (%{z:.0%} of %{y})<br>click to see them<extra></extra>"}],
        "layout": _layout("Confusion matrix (click a cell)", size,
                          margin={"l": 96, "r": 12, "t": 36, "b": 84},
                          xaxis={"title": {"text": "predicted"}, "tickangle": -45,
                                 "automargin": True, "fixedrange": True, "type": "category"},
                          yaxis={"title": {"text": "true"}, "autorange": "reversed",
                                 "automargin": True, "fixedrange": True, "type": "category"}),
        "config": {**CONFIG, "displayModeBar": False},
    }


def training_curves(history: list[dict]) -> dict:
    """Loss and accuracy per epoch, training and validation, as two small charts."""
    epochs = [row.get("epoch", i + 1) for i, row in enumerate(history)]
    out = {}
    for metric, title, fmt in (("loss", "Loss", ".3f"), ("accuracy", "Accuracy", ".1%")):
        traces = []
        for key, name, dash in ((metric, "training", "solid"), (f"val_{metric}", "validation", "dot")):
            values = [row.get(key) for row in history]
            if any(v is not None for v in values):
                traces.append({"type": "scatter", "mode": "lines+markers", "name": name,
                               "x": epochs, "y": values,
                               "line": {"color": ACCENT if name == "training" else "#f59e0b",
                                        "dash": dash, "width": 2}, "marker": {"size": 5},
                               "hovertemplate": f"epoch %{{x}}<br>{name} %{{y:{fmt}}}<extra></extra>"})
        yaxis = _axis("", tickformat=".0%", range=[0, 1.02]) if metric == "accuracy" else _axis("")
        out[metric] = {"data": traces,
                       "layout": _layout(title, 220, showlegend=True,
                                         legend={"orientation": "h", "x": 1, "xanchor": "right",
                                                 "y": 1.02, "yanchor": "bottom"},
                                         margin={"l": 48, "r": 12, "t": 36, "b": 44},
                                         xaxis=_axis("epoch", dtick=max(1, len(epochs) // 8)),
                                         yaxis=yaxis),
                       "config": CONFIG}
    return out


def compare_per_class(report_a: dict, report_b: dict, name_a: str, name_b: str) -> dict:
    """F1 per class of two model versions, side by side (labels of either)."""
    labels = list(dict.fromkeys(report_a.get("labels", []) + report_b.get("labels", [])))
    names = [display_name(label) for label in labels]
    traces = []
    for report, name, color in ((report_a, name_a, ACCENT), (report_b, name_b, "#f59e0b")):
        per_class = report.get("per_class", {})
        values = [per_class[label]["f1"] if label in per_class else None for label in labels]
        traces.append({"type": "bar", "name": name, "x": names, "y": values,
                       "marker": {"color": color},
                       "hovertemplate": f"{name}<br>%{{x}}: F1 %{{y:.2f}}<extra></extra>"})
    return {"data": traces,
            "layout": _layout("", 280, showlegend=True, barmode="group",
                              margin={"l": 56, "r": 16, "t": 30, "b": 44},
                              legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0},
                              xaxis={"tickangle": -30, "automargin": True},
                              yaxis=_axis("F1", range=[0, 1.05])),
            "config": CONFIG}
