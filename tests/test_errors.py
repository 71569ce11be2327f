"""One exception hierarchy: every user-facing error lives in `endcloud.errors` with its own exit code."""

from __future__ import annotations

import importlib
import json
import pkgutil

import endcloud
from endcloud import errors
from endcloud.cli import main
from endcloud.errors import EndcloudError, MissingWeightsError


def _import_all() -> list[str]:
    """Import every module of the package (so every subclass exists); skip those missing an extra."""
    skipped = []
    for info in pkgutil.walk_packages(endcloud.__path__, "endcloud."):
        if info.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(info.name)
        except (ImportError, EndcloudError):  # an optional dependency that is not installed
            skipped.append(info.name)
    return skipped


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


def test_every_error_is_defined_in_errors_with_a_unique_exit_code():
    _import_all()
    classes = [EndcloudError, *_subclasses(EndcloudError)]
    assert len(classes) > 10
    outside = [f"{c.__module__}.{c.__qualname__}" for c in classes
               if c.__module__ != "endcloud.errors" and c.__module__.startswith("endcloud")]
    assert not outside, f"define these in endcloud/errors.py: {outside}"
    owners: dict[int, str] = {}
    for c in classes:
        if "exit_code" in vars(c):  # a subclass without its own code shares its parent's
            code = c.exit_code
            assert isinstance(code, int) and 0 < code < 126, (c, code)
            assert code not in owners, f"exit code {code}: {owners[code]} and {c.__name__}"
            owners[code] = c.__name__
    assert owners[1] == "EndcloudError" and owners[2] == "ConfigError" and owners[3] == "DataFormatError"


def test_the_docstring_table_lists_every_code():
    for c in [EndcloudError, *_subclasses(EndcloudError)]:
        if c.__module__ == "endcloud.errors" and "exit_code" in vars(c):
            assert f"| {c.exit_code:<4} | `{c.__name__}`" in errors.__doc__, c


def test_missing_weights_is_a_clean_cli_error(tmp_path, capsys):
    """A missing matcher reaches the user as one `error:` line and its own exit code."""
    assert issubclass(MissingWeightsError, FileNotFoundError)  # old `except FileNotFoundError` still catch it
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"query": "发货了吗", "reply": "今天发"}, ensure_ascii=False) + "\n",
                     encoding="utf-8")
    rc = main(["evaluate", "score", "--input", str(pairs), "--similarity", "ngram", "--match", "match",
               "--matcher-weights", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert rc == MissingWeightsError.exit_code == 13
    assert err.startswith("error: No trained matcher at") and str(tmp_path / "nowhere") in err
    assert "Traceback" not in err
