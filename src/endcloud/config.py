"""Configuration: one dataclass per stage, loaded from YAML with `key=value` overrides.

    cfg = load_config(DataConfig, "configs/data.yaml", ["split.seed=7", "privacy.enabled=false"])

Unknown keys and values of the wrong type are rejected with a `ConfigError` naming the dotted key.
Each dataclass may check its own values in `__post_init__` by raising `ConfigError`.
"""

from __future__ import annotations

import argparse

import dataclasses
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, Sequence, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from endcloud.errors import ConfigError

T = TypeVar("T")
_YAML11_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def load_config(cls: type[T], path: str | Path | Sequence[str | Path] | None = None,
                overrides: list[str] | None = None) -> T:
    """Build `cls` from a YAML file (optional; several are merged in order, see `merge`) plus
    dotted `key=value` overrides."""
    data: dict[str, Any] = {}
    for layer in ([] if path is None else [path] if isinstance(path, (str, Path)) else path):
        merge(data, read_yaml(layer))
    for item in overrides or []:
        key, value = parse_override(item)
        set_dotted(data, key, value)
    return from_dict(cls, data)


def merge(into: dict[str, Any], layer: dict[str, Any]) -> None:
    """Mappings merge key by key; anything else (lists included) replaces."""
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = value


def read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping of keys to values")
    return data


def parse_override(item: str) -> tuple[str, Any]:
    """`a.b=3` -> ("a.b", 3). The value is parsed as YAML, so `x=[1,2]` and `y=null` work."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {item!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{key}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value


def from_dict(cls: type[T], data: Any, prefix: str = "") -> T:
    """Recursively build dataclass `cls`, checking keys and types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        name = f"{prefix}{unknown[0]}"
        raise ConfigError(f"unknown config key {name!r} (known: {', '.join(sorted(fields))})")
    kwargs = {k: coerce(hints[k], v, f"{prefix}{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except TypeError as exc:
        raise ConfigError(f"{prefix or 'config'}: {exc}") from None


def coerce(tp: Any, value: Any, key: str) -> Any:
    """Check `value` against annotation `tp`; convert where it is lossless (int -> float)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(arg, value, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key}: bad value {value!r}")
    if origin is typing.Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(repr, allowed))}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value if value is not None else {}, f"{key}.")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item_tp, *_) = get_args(tp) or (Any,)
        return [coerce(item_tp, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        kt, vt = get_args(tp) or (Any, Any)
        return {coerce(kt, k, key): coerce(vt, v, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _YAML11_FLOAT.fullmatch(value.strip()):
            return float(value)  # `2e-4`: YAML 1.1 (PyYAML) reads a float without a dot as a string
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    if tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise ConfigError(f"{key}: expected a path, got {value!r}")
    raise ConfigError(f"{key}: unsupported config type {tp!r}")  # a bug in our dataclasses


def to_dict(cfg: Any) -> dict[str, Any]:
    """A YAML-safe dict of a config dataclass (paths become strings)."""

    def clean(v: Any) -> Any:
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return clean(dataclasses.asdict(cfg))


def dump_yaml(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), allow_unicode=True, sort_keys=False)


def check(condition: bool, key: str, message: str) -> None:
    """For `__post_init__`: raise ConfigError naming `key` unless `condition` holds."""
    if not condition:
        raise ConfigError(f"{key}: {message}")


def add_config_args(p: argparse.ArgumentParser, default_config: str | None = None) -> None:
    """The common `--config FILE` + `key=value` overrides of every job."""
    p.add_argument("--config", default=default_config, metavar="FILE",
                   help="YAML config" + (f" (default: {default_config})" if default_config else ""))
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="override a config key, e.g. split.seed=7")


def store_location(value: str, key: str = "store") -> str:
    """A store setting: a SQLite file path ("" = $ENDCLOUD_DB or ./endcloud.db) or a
    postgresql:// URL; any other URL is refused by name rather than taken for a folder."""
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", value)
    if m and m.group(1) not in ("postgresql", "postgres"):
        raise ConfigError(f"{key}: {m.group(1)}:// stores are not supported; give a SQLite file "
                          "path or a postgresql:// URL (or leave it empty for $ENDCLOUD_DB or "
                          "./endcloud.db)")
    return value


LOG_FORMAT_ENV = "ENDCLOUD_LOG_FORMAT"  # "json": one JSON object per log line (log shippers)


def json_logs() -> bool:
    return os.environ.get(LOG_FORMAT_ENV, "").lower() == "json"
