"""The official mini Speech Commands download, cached under data/.

Also takes a local .zip path or a file:// URL, so the extraction is testable
offline and users with a copy need no network.
"""
from __future__ import annotations

import shutil
import zipfile
from pathlib import Path
from urllib.parse import urlparse

from ml.dataset import DataError

URL = "http://storage.googleapis.com/download.tensorflow.org/data/mini_speech_commands.zip"
NAME = "mini_speech_commands"


def download(dest: str | Path = "data", source: str | None = None) -> Path:
    """Return the extracted data folder, downloading or unpacking it only when absent."""
    dest = Path(dest)
    target = dest / NAME
    if target.is_dir() and any(target.iterdir()):
        return target
    dest.mkdir(parents=True, exist_ok=True)
    if source:
        archive = Path(urlparse(source).path) if source.startswith("file://") else Path(source)
        if not archive.is_file():
            raise DataError(f"{archive}: no such file")
    else:
        archive = _fetch(dest)
    _extract(archive, dest, target)
    return target


def _fetch(dest: Path) -> Path:
    import keras  # heavy; only needed for the real download

    try:
        return Path(keras.utils.get_file(f"{NAME}.zip", origin=URL, cache_dir=str(dest.resolve()),
                                         cache_subdir="."))
    except Exception as exc:  # noqa: BLE001  network, HTTP, disk and checksum errors alike: say how to do without
        raise DataError(
            f"could not download {URL} ({type(exc).__name__}); without network use the embedded "
            f"default set (python -m ml data default) or a local copy (--from PATH)") from None


def _extract(archive: Path, dest: Path, target: Path) -> None:
    """Unpack safely (no member may leave `dest`) through a temporary folder."""
    tmp = dest / f".{NAME}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                if not (tmp / member).resolve().is_relative_to(tmp.resolve()):
                    raise DataError(f"{archive}: unsafe path {member!r} in the archive")
            zf.extractall(tmp)
    except zipfile.BadZipFile:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(f"{archive}: not a zip archive") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    inner = tmp / NAME if (tmp / NAME).is_dir() else tmp
    shutil.rmtree(target, ignore_errors=True)
    inner.rename(target)
    shutil.rmtree(tmp, ignore_errors=True)
