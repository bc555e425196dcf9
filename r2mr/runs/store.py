"""The result store: one folder per training run, found by a key, locked while it trains, validated on read.

Layout: ``<runs>/<dataset>/<model>-<key[:12]>-seed<N>/`` holding ``key.json`` (what the key hashes, written
when the folder is created), ``result.json`` (the record), ``checkpoint.pt``, ``log.jsonl`` and artifacts.
``<runs>`` is ``$R2MR_RUNS_DIR`` read at call time, else ``<repo>/runs``.

* Key: sha256 of the canonical JSON of the lower-case model name, the resolved train + model config, the
  data fingerprint, the seed and the model class's ``maths_version``. The device, torch version, commit and
  wall time are recorded in the record but are not keyed, so a result made on a GPU is found on a CPU (and the
  reverse); ``strict=True`` readers treat a record from another device type or torch version as absent.
* Lock: one :class:`filelock.FileLock` per run folder; a second worker asking for a key that is training
  waits, then reads the record instead of training it again.
* Validation on every read: the JSON parses, the schema holds, the stored model, data set, seed, key and maths
  version equal the request, and a sha256 content digest stored in the record matches. A failure is a
  :class:`ConfigError` naming the file and the fix (``--restart``); such a record is never returned. The
  digest catches accidental or partial edits (a hand-edited metric, a truncated copy); it is no signature:
  someone who edits a record and recomputes the digest is not detected.
* Paths inside a record are relative to its folder (``"artifacts": "artifacts.pt"``), so a store can move.
* Recorded, not keyed: ``device``, ``device_name``, ``cpu``, ``torch``, ``commit`` and ``wall_seconds`` (the
  wall time of the call that finished the run: building the model and training; a resumed run counts its last
  part only).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout  # a core dependency (also required by torch)

from ..core.atomic_io import _jsonable, write_json
from ..core.errors import ConfigError
from ..core.paths import RUNS_ENV, runs_root

KEY_FILE, RESULT_FILE, LOCK_FILE = "key.json", "result.json", ".lock"
PATH_FIELDS = ("artifacts", "artifacts_best", "per_user")  # record fields that name files in the run folder
SCHEMA: dict[str, type | tuple[type, ...]] = {
    "model": str, "dataset": str, "seed": int, "device": str, "device_name": str, "torch": str, "commit": str,
    "best_epoch": int, "epochs_run": int, "valid": dict, "test": dict, "test_selected_by_test": dict,
    "config": dict, "history": list, "key": str, "maths_version": int, "wall_seconds": (int, float),
    "digest": str}
RESTART = "fix: rerun with --restart (resume=False) to recompute it"


def check_name(name: str) -> str:
    """A data set name usable as one folder name under the runs folder (no path separators)."""
    if not name or name in (".", "..") or "/" in name or os.sep in name:
        raise ConfigError(f"data set name {name!r} is not a plain folder name; fix: give --data-dir DIR "
                          f"--dataset NAME (or --dataset DIR/NAME)")
    return name


def canonical(obj: Any) -> str:
    """Canonical JSON (sorted keys, no spaces; numpy values and paths as JSON)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_jsonable)


def content_digest(record: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``record`` without its ``digest`` field."""
    body = json.loads(canonical({k: v for k, v in record.items() if k != "digest"}))
    return hashlib.sha256(canonical(body).encode()).hexdigest()


@dataclass(frozen=True)
class Request:
    """What a caller asks the store for; ``fields`` is everything the key hashes."""

    model: str
    dataset: str
    seed: int
    maths_version: int
    fields: dict[str, Any]
    key: str

    def folder(self, root: Path | None = None) -> Path:
        return (root or runs_root()) / self.dataset / f"{self.model}-{self.key[:12]}-seed{self.seed}"


def make_request(model: str, dataset: str, seed: int, config: dict[str, Any], data: str,
                 maths_version: int) -> Request:
    """The request for ``model`` (canonicalised to lower case) with resolved ``config`` on data ``data``."""
    model, dataset = model.lower(), check_name(dataset)
    fields = json.loads(canonical({"model": model, "dataset": dataset, "seed": seed, "data": data,
                                   "maths_version": maths_version, "config": config}))
    return Request(model, dataset, seed, maths_version, fields, hashlib.sha256(canonical(fields).encode()).hexdigest())


def _differs(stored: dict[str, Any], req: Request) -> list[str]:
    diff = [k for k in req.fields if k != "config" and stored.get(k) != req.fields[k]]
    a, b = stored.get("config") or {}, req.fields["config"]
    return diff + sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def make_folder(folder: Path) -> None:
    """Create the run folder (and its parents) if needed; a one-line ConfigError where that is not allowed, or
    where the folder exists, is not empty and is no run folder (nothing is written into it, not even a lock)."""
    if folder.is_dir() and not (folder / KEY_FILE).exists() and any(
            not p.name.startswith(".") for p in folder.iterdir()):  # hidden: the lock, another claim's temp file
        raise ConfigError(f"{folder}: not empty and not a run folder (no {KEY_FILE}); fix: choose a new or "
                          f"empty --run-dir")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{folder}: cannot create the run folder ({exc.strerror}); fix: make the runs folder "
                          f"writable or point {RUNS_ENV} (or --run-dir) at a writable folder") from None


def claim(folder: Path, req: Request, *, restart: bool = False) -> None:
    """Create ``folder`` for ``req`` (writing its key file) or check that it already belongs to ``req``.

    A folder holding another key is an error unless ``restart`` (then it is taken over); a non-empty folder
    without a key file is never written into. Call it holding the folder's lock (:func:`locked`): two
    processes claiming one new folder at once must not see each other's half-written files.
    """
    key_file = folder / KEY_FILE
    make_folder(folder)
    if key_file.is_file():
        try:
            stored = json.loads(key_file.read_text())
        except (OSError, ValueError):
            stored = None
        if isinstance(stored, dict) and stored.get("key") == req.key:
            return
        if restart:
            _write(key_file, {"key": req.key, **req.fields})
            return
        what = (f"differs in {', '.join(_differs(stored, req)) or 'its key'}" if isinstance(stored, dict)
                else f"its {KEY_FILE} is unreadable")
        raise ConfigError(f"{folder}: this run folder holds another run ({what}); fix: use another --run-dir, "
                          f"or --restart to replace it")
    if any(p.name != LOCK_FILE for p in folder.iterdir()):
        raise ConfigError(f"{folder}: not empty and not a run folder (no {KEY_FILE}); fix: choose a new or "
                          f"empty --run-dir")
    _write(key_file, {"key": req.key, **req.fields})


def _write(path: Path, obj: Any) -> None:
    try:
        write_json(path, obj)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write ({exc.strerror}); fix: make the runs folder writable or point "
                          f"{RUNS_ENV} (or --run-dir) at a writable folder") from None


@contextlib.contextmanager
def locked(folder: Path, wait: bool = True) -> Iterator[bool]:
    """Hold the run folder's lock; yields False (without waiting) if ``wait`` is off and another holds it.

    A folder where no lock file can be made (a read-only store) is read without a lock.
    """
    lock = FileLock(folder / LOCK_FILE, timeout=-1 if wait else 0)
    try:
        lock.acquire()
    except Timeout:
        yield False
        return
    except OSError:  # read-only store: nobody can be writing it from here
        yield True
        return
    try:
        yield True
    finally:
        lock.release()


class RecordError(ConfigError):
    """A stored record that cannot be used (corrupt, edited, of another request or of an older schema)."""


def _bad(path: Path, problem: str) -> RecordError:
    return RecordError(f"{path}: {problem}; {RESTART}")


def _migrate(rec: dict[str, Any], req: Request) -> dict[str, Any]:
    """An older record with fields that are exactly implied filled in: model, data set, seed and maths version
    by its key (which hashes them) when that key is the request's, ``epochs_run`` by its history. The digest is
    checked on the record as it was written."""
    implied = {"model": req.model, "dataset": req.dataset, "seed": req.seed, "maths_version": req.maths_version}
    if isinstance(rec.get("history"), list):
        implied["epochs_run"] = len(rec["history"])
    missing = [f for f in SCHEMA if f not in rec]
    if not missing or not set(missing) <= set(implied) or rec.get("key") != req.key:
        return rec
    if rec.get("digest") != content_digest(rec):
        return rec  # not exact: reported as a mismatch below
    return {**rec, **{f: implied[f] for f in missing}, "digest": content_digest({**rec, **{f: implied[f] for f in
                                                                                          missing}})}


def read(folder: Path, req: Request) -> dict[str, Any] | None:
    """The validated record in ``folder`` for ``req`` (plus ``cached`` and ``run_dir``), or None if absent.

    Raises ConfigError for a record that does not parse, breaks the schema, answers another request or whose
    digest does not match its content.
    """
    path = folder / RESULT_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _bad(path, f"cannot be read ({exc.strerror})") from None
    try:
        rec = json.loads(text)
    except ValueError as exc:
        raise _bad(path, f"not valid JSON ({exc})") from None
    if not isinstance(rec, dict):
        raise _bad(path, "not a JSON object")
    rec = _migrate(rec, req)
    for field, typ in SCHEMA.items():
        if field not in rec:
            raise _bad(path, f"field '{field}' is missing")
        if not isinstance(rec[field], typ) or (typ is int and isinstance(rec[field], bool)):
            raise _bad(path, f"field '{field}' has type {type(rec[field]).__name__}")
    for field, want in (("model", req.model), ("dataset", req.dataset), ("seed", req.seed), ("key", req.key),
                        ("maths_version", req.maths_version)):
        if rec[field] != want:
            raise _bad(path, f"holds {field} {rec[field]!r}, not the requested {want!r}")
    if rec["digest"] != content_digest(rec):
        raise _bad(path, "content does not match its digest (edited or partly written)")
    return {**rec, "cached": True, "run_dir": str(folder)}


def same_platform(record: dict[str, Any], device_type: str, torch_version: str) -> bool:
    """Whether ``record`` was made on the same device type with the same torch version (``strict`` match)."""
    return record.get("device") == device_type and record.get("torch") == torch_version


def write(folder: Path, req: Request, result: dict[str, Any], wall_seconds: float) -> dict[str, Any]:
    """Store ``result`` as the record of ``req`` (key, maths version, wall time, relative paths, digest)."""
    rec = {k: v for k, v in result.items() if k not in ("cached", "run_dir")}
    for field in PATH_FIELDS:
        if isinstance(rec.get(field), str) and Path(rec[field]).is_absolute():
            rec[field] = os.path.relpath(rec[field], folder)
    rec.update(model=req.model, key=req.key, maths_version=req.maths_version, wall_seconds=float(wall_seconds))
    rec = json.loads(canonical(rec))
    rec["digest"] = content_digest(rec)
    _write(folder / RESULT_FILE, rec)
    return {**rec, "cached": False, "run_dir": str(folder)}
