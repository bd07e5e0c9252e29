"""Moved to ml/export/formats.py. This name stays only until webapp/versions/downloads.py
imports that (it is being edited by someone else); then it goes."""
from ml.export.formats import *  # noqa: F403
