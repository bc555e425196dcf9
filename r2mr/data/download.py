"""Fetch the Amazon Baby / Sports / Clothing sets (interactions + image and text features) from MMRec's
public Google Drive folder with gdown, check them, then install them into ``<root>/<name>/`` file by file.

The files (``<name>.inter``, ``image_feat.npy`` 4096-d, ``text_feat.npy`` 384-d) are the ones MMRec, FREEDOM
and the R2MR authors use. Nothing is written to ``<root>/<name>/`` unless every check passes; each file is
then renamed into place atomically, and other files in the folder are left alone. A file of the same name
that this command did not install (it is not in the folder's manifest with the same size and SHA-256) is
never overwritten: the download is refused before it starts. The manifest ``.r2mr-download.json`` records
the size and SHA-256 of every installed file. MMRec's Drive folder publishes no sizes or checksums, so
:data:`KNOWN` is empty; a value added there is checked before installing. Archives are extracted with
bounds (:data:`MAX_EXTRACT_BYTES`, :data:`MAX_EXTRACT_FILES`) and no member may leave the staging folder.
A killed download leaves a staging folder ``<root>/.download-<name>-*``; the next download removes it.
"""

from __future__ import annotations

import datetime as _dt
import errno
import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from ..core.atomic_io import file_mode, write_json
from ..core.errors import DataError
from ..core.names import AMAZON
from .mmrec import check_dataset

log = logging.getLogger(__name__)

MMREC_FOLDER = "https://drive.google.com/drive/folders/13cBy1EA_saTUuXxVllKgtfci2A09jyaG"
DATASETS = AMAZON
NEEDED = ("image_feat.npy", "text_feat.npy")
MANIFEST = ".r2mr-download.json"  # size and SHA-256 of every file this command installed in <root>/<name>/
STAGING_OWNER = ".r2mr-staging.json"  # pid and host of the download using a staging folder
MAX_EXTRACT_BYTES = 16 * 2**30  # an archive may unpack to at most 16 GiB (Clothing's files total < 1 GiB)
MAX_EXTRACT_FILES = 1000  # and to at most this many files
# {data set: {file: (bytes, sha256)}} as published by the data's owner; MMRec publishes none (2025), so empty.
KNOWN: dict[str, dict[str, tuple[int, str]]] = {}

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


def _safe_member(info: zipfile.ZipInfo, archive: Path) -> PurePosixPath:
    """The member's relative path; an absolute path or one with ``..`` is refused."""
    rel = PurePosixPath(info.filename.replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts or (rel.parts and ":" in rel.parts[0]):
        raise DataError(f"{archive}: member '{info.filename}' would be written outside the download folder; "
                        f"fix: the archive is not MMRec's, download the files by hand")
    return rel


def extract_bounded(archive: Path, into: Path, max_bytes: int = MAX_EXTRACT_BYTES,
                    max_files: int = MAX_EXTRACT_FILES) -> None:
    """Unpack ``archive`` into ``into``, counting the bytes actually written (not the declared sizes)."""
    with zipfile.ZipFile(archive) as zf:
        members = [i for i in zf.infolist() if not i.is_dir()]
        if len(members) > max_files:
            raise DataError(f"{archive}: holds {len(members)} files, more than the limit of {max_files}; "
                            f"fix: the archive is not MMRec's, download the files by hand")
        total = 0
        for info in members:
            target = into / _safe_member(info, archive)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as dst:
                while chunk := src.read(1 << 20):
                    total += len(chunk)
                    if total > max_bytes:
                        raise DataError(f"{archive}: unpacks to more than {max_bytes:,} bytes; fix: the archive "
                                        f"is not MMRec's, download the files by hand")
                    dst.write(chunk)


def _normalise(staging: Path, name: str) -> Path:
    """Unpack zips (bounded), then gather ``<name>.inter`` and the feature files into one folder."""
    for z in staging.rglob("*.zip"):
        extract_bounded(z, staging)
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


def digest(path: Path) -> dict[str, Any]:
    """``{"bytes": size, "sha256": hex}`` of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return {"bytes": path.stat().st_size, "sha256": h.hexdigest()}


def _manifest(dest: Path) -> dict[str, Any]:
    try:
        data = json.loads((dest / MANIFEST).read_text())
        return data if isinstance(data, dict) and isinstance(data.get("files"), dict) else {"files": {}}
    except (OSError, ValueError):
        return {"files": {}}


def check_target(dest: Path, names: list[str]) -> None:
    """Refuse a target that is not a folder, or that holds a file of one of ``names`` this command did not
    install (absent from the manifest, or changed since)."""
    if dest.is_symlink() and not dest.exists():
        raise DataError(f"{dest}: is a symlink to a missing folder; fix: create its target or remove the link")
    if dest.exists() and not dest.is_dir():
        raise DataError(f"{dest}: exists and is not a folder; fix: move it away, then rerun the download")
    owned = _manifest(dest)["files"]
    for fname in names:
        path = dest / fname
        if path.exists() and (fname not in owned or digest(path) != owned[fname]):
            raise DataError(f"{path}: exists and was not installed by `r2mr data download` (or was changed since); "
                            f"fix: move it away (it is never overwritten), then rerun the download")


def _install_file(src: Path, dst: Path) -> None:
    """Move ``src`` onto ``dst`` atomically; across file systems, copy to a temporary name beside ``dst`` first."""
    try:
        os.replace(src, dst)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", dir=dst.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.chmod(tmp, file_mode())
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _alive(owner: Path) -> bool:
    """True if the staging folder's download process may still be running."""
    try:
        info = json.loads(owner.read_text())
        if info.get("host") != socket.gethostname():
            return True  # another machine's download: leave it
        os.kill(int(info["pid"]), 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OSError, ValueError, KeyError, TypeError):
        return False  # no or unreadable owner file: the download died right after creating the folder


def remove_stale_staging(root: Path, name: str) -> list[Path]:
    """Delete ``<root>/.download-<name>-*`` folders whose download process is gone; return them."""
    gone = []
    for folder in root.glob(f".download-{name}-*"):
        if folder.is_dir() and not folder.is_symlink() and not _alive(folder / STAGING_OWNER):
            shutil.rmtree(folder, ignore_errors=True)
            gone.append(folder)
            log.info("removed the staging folder of a killed download: %s", folder)
    return gone


def _check_known(name: str, records: dict[str, dict[str, Any]], root: Path) -> None:
    for fname, (size, sha) in KNOWN.get(name, {}).items():
        got = records.get(fname)
        if got is not None and (got["bytes"], got["sha256"]) != (size, sha):
            raise DataError(f"{fname}: downloaded {got['bytes']:,} bytes with SHA-256 {got['sha256'][:12]}…, the "
                            f"publisher's is {size:,} bytes, {sha[:12]}…; {manual_hint(name, root)}")


def _fetch(name: str, staging: Path, fetch: Fetcher, root: Path) -> None:
    try:
        fetch(name, staging)
    except DataError:
        raise
    except Exception as exc:  # network and Drive errors from gdown
        first = str(exc).splitlines()[0][:160] if str(exc) else ""
        raise DataError(f"download of '{name}' failed ({type(exc).__name__}: {first}); "
                        f"{manual_hint(name, root)}") from None


def download(name: str, root: str | Path, fetch: Fetcher = gdown_fetch,
             probe: Callable[[], bool] = reachable) -> Path:
    """Download, check and install data set ``name`` into ``root`` file by file; return its folder."""
    root = Path(root)
    if name not in DATASETS:
        raise DataError(f"unknown data set '{name}' for download; fix: choose one of {', '.join(DATASETS)}")
    dest = root / name
    expected = [f"{name}.inter", *NEEDED]
    check_target(dest, expected)
    if not probe():
        raise DataError(f"cannot reach drive.google.com (no network?); {manual_hint(name, root)}")
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(root, name)
    staging = Path(tempfile.mkdtemp(prefix=f".download-{name}-", dir=root))
    try:
        (staging / STAGING_OWNER).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
        _fetch(name, staging, fetch, root)
        folder = _normalise(staging, name)
        missing = [f for f in NEEDED if not (folder / f).exists()]
        if missing:
            raise DataError(f"{folder}: the download lacks {', '.join(missing)}; {manual_hint(name, root)}")
        check_dataset(name, staging)
        files = sorted(p for p in folder.iterdir() if p.is_file())
        records = {p.name: digest(p) for p in files}
        _check_known(name, records, root)
        check_target(dest, list(records))  # again: a file may have appeared during the download
        dest.mkdir(parents=True, exist_ok=True)  # through a symlink, if dest is one
        for p in files:
            _install_file(p, dest / p.name)
        manifest = _manifest(dest)
        manifest.update(dataset=name, source=MMREC_FOLDER, checksums_published=bool(KNOWN.get(name)),
                        installed=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
        manifest["files"].update(records)
        write_json(dest / MANIFEST, manifest)
        log.info("installed %s (%s)", dest, ", ".join(records))
        return dest
    finally:
        shutil.rmtree(staging, ignore_errors=True)
