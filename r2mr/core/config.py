"""Typed, strict configuration: dataclasses updated from ``key=value`` strings or YAML mappings.

An unknown key is an error naming the key and its close matches; a value that does not parse as the
field's type is an error too. Defaults live in the dataclass next to the code that uses them. ``parse_list`` reads
the comma-separated lists of options (``--datasets a,b``).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml

from .config_rules import validate
from .errors import ConfigError


def _field_types(cfg: Any) -> dict[str, Any]:
    hints = typing.get_type_hints(type(cfg))
    return {f.name: hints[f.name] for f in dataclasses.fields(cfg)}


def _coerce(value: Any, typ: Any, key: str) -> Any:
    """Convert ``value`` (a YAML-parsed object or a string) to ``typ``; raise ConfigError if impossible."""
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return _coerce(value, args[0], key)
    if isinstance(value, str) and typ is not str:
        value = yaml.safe_load(value) if value.strip() else value
    try:
        if typ is bool:
            if isinstance(value, bool):
                return value
            raise ValueError
        if typ is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if typ is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if typ is str:
            return str(value)
        if origin in (tuple, list):
            (inner, *_) = typing.get_args(typ) or (Any,)
            seq = value if isinstance(value, (list, tuple)) else [value]
            out = [v if inner is Any else _coerce(v, inner, key) for v in seq]
            return tuple(out) if origin is tuple else out
        if typing.get_origin(typ) is typing.Literal:
            if value in typing.get_args(typ):
                return value
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"config key '{key}': {value!r} is not a valid {getattr(typ, '__name__', typ)}; "
                          f"fix: give a value of that type") from None
    return value


def apply(cfgs: Iterable[Any], overrides: dict[str, Any]) -> None:
    """Set each key on the first dataclass in ``cfgs`` that has it (in place); unknown keys are errors."""
    cfgs, touched = list(cfgs), []
    for key, raw in overrides.items():
        owner = next((c for c in cfgs if key in _field_types(c)), None)
        if owner is None:
            known = sorted({k for c in cfgs for k in _field_types(c)})
            close = difflib.get_close_matches(key, known, n=3)
            hint = f"did you mean {', '.join(close)}?" if close else f"known keys: {', '.join(known)}"
            raise ConfigError(f"unknown config key '{key}'; {hint}")
        setattr(owner, key, _coerce(raw, _field_types(owner)[key], key))
        touched.append(owner)
    for owner in {id(o): o for o in touched}.values():  # validate once all keys are set (cross-field rules)
        validate(owner)


def parse_overrides(items: Iterable[str]) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``; an item without '=' is an error."""
    out: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set '{item}' is not key=value; fix: write e.g. --set n_layers=3")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a key given twice in one mapping (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(f"{self.name}: config key '{key}' is given twice (line "
                                  f"{key_node.start_mark.line + 1}); fix: keep one of the two lines")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _read_text(path: Path) -> str:
    """The file's text; a missing, folder, unreadable or non-UTF-8 path is one ConfigError line."""
    if not path.exists():
        raise ConfigError(f"{path}: config file not found; fix: check the path")
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a config file; fix: name a YAML file")
    try:
        return path.read_text(encoding="utf-8")
    except PermissionError:
        raise ConfigError(f"{path}: not readable (permission denied); fix: chmod u+r it or copy it") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); fix: save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror}); fix: check the file") from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a flat YAML mapping of config keys; a key given twice is an error."""
    path = Path(path)
    text = _read_text(path)
    loader = _UniqueKeyLoader(text)
    loader.name = str(path)
    try:
        data = loader.get_single_data() or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]}); fix: correct the syntax") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of key: value; fix: write one key per line")
    return data


def to_dict(*cfgs: Any) -> dict[str, Any]:
    """Merge dataclasses into one plain dict (for JSON and checkpoints)."""
    out: dict[str, Any] = {}
    for c in cfgs:
        for k, v in dataclasses.asdict(c).items():
            out[k] = list(v) if isinstance(v, tuple) else v
    return out


def parse_list(spec: str | Sequence[str] | None) -> list[str]:
    """``"a, b"`` or ``["a", "b"]`` -> ``["a", "b"]`` (empty items dropped)."""
    if spec is None:
        return []
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    return [str(s).strip() for s in items if str(s).strip()]
