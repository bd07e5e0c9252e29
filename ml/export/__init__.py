"""Exporting a run to run elsewhere: `python -m ml export --format` (ml/cli.py).

    formats.py      the formats, their files and which runs support them (no TensorFlow:
                    the web app's Download menu reads it)
    writers.py      export(): one writer per format (keras, tflite, tflite-int8, bundle)
    bundle.py       the bundle's ZIP: model, labels, figures, README, requirements, predict.py
    model_card.py   the bundle's MODEL_CARD.md, from what is known of the run (Facts)
    predict.py      the bundle's standalone predict.py (a plain file: no Hark imports)
    litert_file.py  runs one exported .tflite file (checks, accuracy and latency of exports)

This file imports nothing, so `import ml.export.formats` stays free of TensorFlow.
(The served graphs, model.tflite and window.tflite, are written by ml/graph.py.)
"""
