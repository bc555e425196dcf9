"""Fetch the Amazon Baby / Sports / Clothing sets (interactions + image and text features) from MMRec's
public Google Drive folder with gdown, check them, then move them into ``<root>/<name>/`` atomically.

The files (``<name>.inter``, ``image_feat.npy`` 4096-d, ``text_feat.npy`` 384-d) are the ones MMRec, FREEDOM
and the R2MR authors use. Nothing is written to the data root unless every check passes.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

from ..errors import DataError
from .mmrec import check_dataset

log = logging.getLogger(__name__)

MMREC_FOLDER = "https://drive.google.com/drive/folders/13cBy1EA_saTUuXxVllKgtfci2A09jyaG"
DATASETS = ("baby", "sports", "clothing")
NEEDED = ("image_feat.npy", "text_feat.npy")

Fetcher = Callable[[str, Path], None]  # (data set name, staging folder) -> files written under it


def manual_hint(name: str, root: Path) -> str:
    return (f"fix: download the '{name}' folder from {MMREC_FOLDER} by hand and put {name}.inter, "
            f"image_feat.npy and text_feat.npy in {root / name}/, then run `python -m r2mr data check {name}`")


def reachable(host: str = "drive.google.com", port: int = 443, timeout: float = 5.0) -> bool:
    """True if a TCP connection to ``host`` opens within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def gdown_fetch(name: str, staging: Path) -> None:
    """List MMRec's Drive folder and download the entries that belong to ``name`` (folder or zip)."""
    import gdown

    listing = gdown.download_folder(url=MMREC_FOLDER, skip_download=True, quiet=True) or []
    wanted = [f for f in listing if name in Path(f.path).parts or Path(f.path).stem == name]
    if not wanted:
        raise DataError(f"{MMREC_FOLDER}: no entry named '{name}' in the Drive folder; "
                        f"{manual_hint(name, staging.parent)}")
    for f in wanted:
        target = staging / Path(f.path).name
        gdown.download(id=f.id, output=str(target), quiet=False)


def _normalise(staging: Path, name: str) -> Path:
    """Unpack zips, then gather ``<name>.inter`` and the feature files into one folder."""
    for z in staging.rglob("*.zip"):
        with zipfile.ZipFile(z) as zf:
            zf.extractall(staging)
        z.unlink()
    folder = staging / name
    folder.mkdir(exist_ok=True)
    inters = sorted(p for p in staging.rglob("*.inter") if p.parent != folder or p.name != f"{name}.inter")
    if not (folder / f"{name}.inter").exists():
        if not inters:
            raise DataError(f"{staging}: the download holds no .inter file; {manual_hint(name, staging.parent)}")
        shutil.move(str(inters[0]), folder / f"{name}.inter")
    for npy in staging.rglob("*_feat*.npy"):
        dest = folder / ("text_feat.npy" if npy.name.startswith("text_feat") else npy.name)
        if npy != dest and not dest.exists():
            shutil.move(str(npy), dest)
    return folder


def download(name: str, root: str | Path, fetch: Fetcher = gdown_fetch,
             probe: Callable[[], bool] = reachable) -> Path:
    """Download, check and install data set ``name`` into ``root``; return its folder."""
    root = Path(root)
    if name not in DATASETS:
        raise DataError(f"unknown data set '{name}' for download; fix: choose one of {', '.join(DATASETS)}")
    if not probe():
        raise DataError(f"cannot reach drive.google.com (no network?); {manual_hint(name, root)}")
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".download-{name}-", dir=root))
    try:
        try:
            fetch(name, staging)
        except DataError:
            raise
        except Exception as exc:  # network and Drive errors from gdown
            raise DataError(f"download of '{name}' failed ({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}); "
                            f"{manual_hint(name, root)}") from None
        folder = _normalise(staging, name)
        missing = [f for f in NEEDED if not (folder / f).exists()]
        if missing:
            raise DataError(f"{folder}: the download lacks {', '.join(missing)}; {manual_hint(name, root)}")
        check_dataset(name, staging)
        dest = root / name
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(folder, dest)
        log.info("installed %s", dest)
        return dest
    finally:
        shutil.rmtree(staging, ignore_errors=True)
