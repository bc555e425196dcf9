"""The evidence archive: a compact, committed copy of every finished run that a table uses.

The store (:mod:`r2mr.store`, ``runs/``, git-ignored) holds checkpoints and full-precision files; the archive
(``results/evidence/`` or ``$R2MR_ARCHIVE_DIR``) holds, per run, one file
``<dataset>/<model>-<key[:12]>-seed<N>.npz`` that numpy reads without pickle (``allow_pickle=False``):

* ``record``: the UTF-8 bytes (uint8) of a JSON document: ``archive_schema``, ``key``, ``fields`` (everything the key
  hashes: model, data set, seed, data fingerprint, maths version, resolved config), ``record`` (the store's
  record: provenance — device and its name, CPU threads, versions of torch/numpy/scipy/scikit-learn/pandas,
  commit, date, wall time — the per-epoch history with every valid and test metric, the selected epochs of the
  valid rule and of the official test rule and their metrics), ``arrays`` (the tree of the arrays below, each
  leaf ``{"$array": name, "dtype": original dtype}``) and ``digest`` (sha256 of all of it and of every array).
* ``per_user.test.users`` (the test users, sorted ids, delta-coded int32) and ``per_user.<rule>.<metric>``
  (float16) for Recall@20 and NDCG@20 on the test split at the selected epoch of each rule (``by_valid``;
  ``by_test`` only where the official rule selects another epoch).
* ``artifacts.*`` / ``artifacts_best.*``: R2MR's Reviewer scores, quality states, rewritten masks and rewrite
  rounds after training and at the best-valid epoch; float tensors as float16.

Why ``.npz``, one file per run: compressed, typed, safe to read; written once, so each increment of a campaign
adds small files (a columnar file per table would be rewritten, and stored again in git, at every increment).
Float16 keeps the campaign within about 30 MB; tables are made from the archive, so they recompute exactly.

A record is validated on read exactly like the store's: the JSON parses, the schema holds, the key is the
sha256 of ``fields``, the file name and the request match, and the digest matches. The store reads through the
archive: :func:`restore` writes an archived run into its store folder (``result.json``, ``per_user.npz``,
``artifacts*.pt``), after which every reader sees a stored run; nothing is retrained unless ``--retrain``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ConfigError
from ..core.paths import REPO_ROOT
from . import store

ARCHIVE_ENV = "R2MR_ARCHIVE_DIR"
ARCHIVE_SCHEMA = 1
PER_USER_METRICS, ARTIFACT_FIELDS = ("recall@20", "ndcg@20"), ("artifacts", "artifacts_best")
DROPPED = ("digest", "cached", "run_dir", "source")  # record fields the archive does not keep
FIX = "fix: restore it with `git checkout -- <file>`, or delete it and add the run again (`python -m r2mr archive add`)"


def archive_root() -> Path:
    """``$R2MR_ARCHIVE_DIR`` read at call time, else ``<repo>/results/evidence``."""
    env = os.environ.get(ARCHIVE_ENV)
    return Path(env).expanduser() if env else REPO_ROOT / "results" / "evidence"


def entry_name(model: str, dataset: str, key: str, seed: int) -> str:
    """The archive-relative file name of one run."""
    return f"{dataset}/{model}-{key[:12]}-seed{seed}.npz"


@dataclass
class Entry:
    """One archived run: its JSON document and its arrays (``name -> ndarray``)."""

    doc: dict[str, Any]
    arrays: dict[str, np.ndarray]

    @property
    def name(self) -> str:
        f = self.doc["fields"]
        return entry_name(f["model"], f["dataset"], self.doc["key"], f["seed"])


# ---- digests and encoding ----------------------------------------------------------------------------------

def _digest(doc: dict[str, Any], arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256(store.canonical({k: v for k, v in doc.items() if k != "digest"}).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _encode(obj: Any, prefix: str, arrays: dict[str, np.ndarray]) -> Any:
    """``obj`` as JSON with every tensor/array moved into ``arrays`` (float as float16) and a placeholder left."""
    import torch

    if isinstance(obj, torch.Tensor):
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        arrays[prefix] = obj.astype(np.float16) if obj.dtype.kind == "f" else obj
        return {"$array": prefix, "dtype": obj.dtype.str}
    if isinstance(obj, dict):
        return {str(k): _encode(v, f"{prefix}.{k}", arrays) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_encode(v, f"{prefix}.{i}", arrays) for i, v in enumerate(obj)]
    return obj


def _decode(tree: Any, arrays: dict[str, np.ndarray]) -> Any:
    """Inverse of :func:`_encode`: placeholders become torch tensors of their original dtype."""
    import torch

    if isinstance(tree, dict) and "$array" in tree:
        a = arrays[tree["$array"]]
        a = np.cumsum(a, dtype=np.int64) if tree.get("delta") else a
        return torch.from_numpy(a.astype(np.dtype(tree["dtype"])))
    if isinstance(tree, dict):
        return {k: _decode(v, arrays) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_decode(v, arrays) for v in tree]
    return tree


decode_tree = _decode  # public name: readers of archived artifacts (r2mr.report.robustness)


# ---- from the store to an entry, and back ------------------------------------------------------------------

def pack(folder: Path) -> Entry:
    """The archive entry of the finished run in store ``folder`` (validated by the store first)."""
    from ..core.atomic_io import load_torch
    from ..evaluation.evaluator import load_per_user

    fields = _json(folder / store.KEY_FILE)
    key = fields.pop("key", None)
    req = store.Request(fields["model"], fields["dataset"], fields["seed"], fields["maths_version"], fields,
                        key or "")
    rec = store.read(folder, req)
    if rec is None:
        raise ConfigError(f"{folder}: no finished run ({store.RESULT_FILE} missing); fix: let it finish first")
    arrays: dict[str, np.ndarray] = {}
    tree: dict[str, Any] = {}
    if rec.get("per_user"):
        tree["per_user"] = _pack_per_user(load_per_user(folder / rec["per_user"]), arrays)
    for field in ARTIFACT_FIELDS:
        if rec.get(field):
            tree[field] = _encode(load_torch(folder / rec[field]), field, arrays)
    doc = {"archive_schema": ARCHIVE_SCHEMA, "key": req.key, "fields": fields,
           "record": {k: v for k, v in rec.items() if k not in DROPPED}, "arrays": tree}
    doc = json.loads(store.canonical(doc))
    doc["digest"] = _digest(doc, arrays)
    return Entry(doc, arrays)


def _pack_per_user(pu: dict[str, Any], arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """The test split's per-user metrics of each rule's epoch: the users (sorted ids, shared by the rules) once,
    delta-coded; ``by_test`` only where it selected another epoch than ``by_valid``."""
    users = np.asarray(pu["by_valid"]["test"]["users"], dtype=np.int64)
    arrays["per_user.test.users"] = np.diff(users, prepend=0).astype(np.int32)
    tree: dict[str, Any] = {"users": {"$array": "per_user.test.users", "dtype": users.dtype.str, "delta": True}}
    for rule, v in pu.items():
        if rule == "by_valid" or v["epoch"] != pu["by_valid"]["epoch"]:
            metrics = {m: np.asarray(v["test"][m]) for m in PER_USER_METRICS}
            tree[rule] = {"epoch": int(v["epoch"]), **_encode(metrics, f"per_user.{rule}", arrays)}
    return tree


def _unpack_per_user(tree: dict[str, Any], arrays: dict[str, np.ndarray], test_epoch: int) -> dict[str, Any]:
    """Inverse of :func:`_pack_per_user`, in :func:`r2mr.evaluate.save_per_user`'s layout."""
    users = _decode(tree["users"], arrays)
    out = {r: {"epoch": v["epoch"], "test": {"users": users, **{m: _decode(v[m], arrays) for m in PER_USER_METRICS}}}
           for r, v in tree.items() if r != "users"}
    if "by_test" not in out:  # the same epoch: stored once
        out["by_test"] = {**out["by_valid"], "epoch": test_epoch}
    return out


def per_user_of(entry: Entry) -> dict[str, Any]:
    """The entry's per-user test metrics, ``{rule: {"epoch", "test": {"users", metric: ...}}}`` (tensors, as
    :func:`r2mr.evaluation.evaluator.load_per_user` reads them); empty for a run without them."""
    tree = entry.doc["arrays"].get("per_user")  # (a run without per-user metrics: empty)
    return _unpack_per_user(tree, entry.arrays, entry.doc["record"]["selected_by_test_epoch"]) if tree else {}


def restore(entry: Entry, folder: Path) -> dict[str, Any]:
    """Write ``entry`` into store ``folder`` as a finished run (key file, per-user file, artifacts, record);
    return the store's record. Call it holding the folder's lock, on a folder without a record."""
    from ..core.atomic_io import save_torch
    from ..evaluation.evaluator import save_per_user

    f = entry.doc["fields"]
    req = store.Request(f["model"], f["dataset"], f["seed"], f["maths_version"], f, entry.doc["key"])
    store.claim(folder, req)
    rec = dict(entry.doc["record"])
    tree = entry.doc["arrays"]
    if "per_user" in tree:
        pu = _unpack_per_user(tree["per_user"], entry.arrays, rec["selected_by_test_epoch"])
        save_per_user(folder / "per_user.npz", pu)
        rec["per_user"] = "per_user.npz"
    for field in ARTIFACT_FIELDS:
        if field in tree:
            save_torch(_decode(tree[field], entry.arrays), folder / f"{field}.pt")
            rec[field] = f"{field}.pt"
    out = store.write(folder, req, rec, rec["wall_seconds"])
    return {**out, "cached": True, "source": "archive"}


# ---- files ---------------------------------------------------------------------------------------------------

def _json(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        obj = f"unreadable ({exc})"
    if not isinstance(obj, dict):
        raise ConfigError(f"{path}: {obj if isinstance(obj, str) else 'not a JSON object'}; {store.RESTART}")
    return obj


def to_bytes(entry: Entry) -> bytes:
    """The entry as the bytes of a compressed ``.npz``."""
    buf = io.BytesIO()
    record = np.frombuffer(store.canonical(entry.doc).encode(), dtype=np.uint8)  # UTF-8 JSON
    np.savez_compressed(buf, record=record, **entry.arrays)
    return buf.getvalue()


def from_bytes(data: bytes, where: str, expect: str | None = None) -> Entry:
    """Parse and validate one entry (``where`` names it in errors; ``expect``: the archive-relative name it must
    have). Any problem is one ConfigError line."""
    def bad(problem: str) -> ConfigError:
        return ConfigError(f"{where}: {problem}; {FIX}")

    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        doc = json.loads(arrays.pop("record").tobytes().decode())
    except (OSError, ValueError, KeyError, EOFError, UnicodeDecodeError, AttributeError) as exc:
        raise bad(f"not an archive entry ({str(exc)[:100]})") from None
    schema = {"archive_schema": int, "key": str, "fields": dict, "record": dict, "arrays": dict, "digest": str}
    for field, typ in schema.items():
        if not isinstance(doc.get(field), typ):
            raise bad(f"field '{field}' is missing or not a {typ.__name__}")
    if doc["archive_schema"] != ARCHIVE_SCHEMA:
        raise bad(f"archive schema {doc['archive_schema']}, this code reads {ARCHIVE_SCHEMA}")
    if hashlib.sha256(store.canonical(doc["fields"]).encode()).hexdigest() != doc["key"]:
        raise bad("its key is not the hash of its key fields")
    if doc["digest"] != _digest(doc, arrays):
        raise bad("content does not match its digest (edited or partly written)")
    rec, f = doc["record"], doc["fields"]
    for field in ("model", "dataset", "seed", "key", "maths_version"):
        if rec.get(field) != (doc["key"] if field == "key" else f.get(field)):
            raise bad(f"its record's {field} {rec.get(field)!r} differs from its key fields")
    entry = Entry(doc, arrays)
    if expect is not None and entry.name != expect:
        raise bad(f"holds run {entry.name}, not {expect}")
    return entry


def read(path: Path, root: Path | None = None) -> Entry:
    """Read and validate the entry at ``path`` (its name must match its content under ``root``)."""
    root = root or archive_root()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror}); {FIX}") from None
    try:
        expect = path.relative_to(root).as_posix()
    except ValueError:
        expect = None
    return from_bytes(data, str(path), expect)


def write(entry: Entry, root: Path | None = None) -> Path:
    """Write ``entry`` atomically under ``root``; an existing file with other content is never replaced."""
    from ..core.atomic_io import atomic_path

    path = (root or archive_root()) / entry.name
    data = to_bytes(entry)
    if path.is_file():
        old = read(path, root or archive_root())
        if old.doc["digest"] != entry.doc["digest"]:
            raise ConfigError(f"{path}: the archive already holds this run with other content; fix: keep the "
                              f"archived one (runs are never replaced), or delete the file to archive the new one")
        return path
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def lookup(req: store.Request, root: Path | None = None) -> Entry | None:
    """The validated archived entry of ``req``, or None; one whose key fields differ is an error."""
    root = root or archive_root()
    path = root / entry_name(req.model, req.dataset, req.key, req.seed)
    if not path.is_file():
        return None
    entry = read(path, root)
    if entry.doc["key"] != req.key:
        raise ConfigError(f"{path}: holds another run than the one asked for (key differs); {FIX}")
    return entry


def entries(root: Path | None = None) -> list[Path]:
    """Every entry file of the archive, sorted."""
    root = root or archive_root()
    return sorted(root.glob("*/*.npz")) if root.is_dir() else []
