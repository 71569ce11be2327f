"""The adapter registry: aliases, promotion and rollback, and kill -9 at every point of the
pointer switch (and between the gate and the switch) leaves the old pointer or the new one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evolve_helpers import fake_adapter

from endcloud.end.adapters import verify
from endcloud.errors import RegistryError
from endcloud.end.registry import KILL_ENV, Registry, read_pointer

TESTS = Path(__file__).resolve().parent


def test_promote_and_rollback_keep_previous_champions(tmp_path):
    reg = Registry(tmp_path / "reg")
    assert reg.champion() is None and reg.pointer()["previous"] == []
    a = reg.add(fake_adapter(tmp_path / "src-a", "a"), round_id=1)
    b = reg.add(fake_adapter(tmp_path / "src-b", "b"), round_id=2)
    assert a != b and reg.adapters() == sorted([a, b])
    reg.promote(a, "round 1")
    reg.promote(b, "round 2")
    assert reg.champion() == b and reg.pointer()["previous"] == [None, a]
    assert reg.rollback("bad") == a and reg.champion() == a
    assert reg.rollback() is None and reg.champion() is None  # back to the base model
    with pytest.raises(RegistryError, match="nothing to roll back"):
        reg.rollback()
    with pytest.raises(RegistryError, match="no adapter"):
        reg.promote("a9999")
    assert [e["action"] for e in reg.events()] == ["add", "add", "promote", "promote",
                                                  "rollback", "rollback"]
    assert not list((tmp_path / "reg").glob(".champion.*"))  # no temp files left behind


def test_add_refuses_an_unverifiable_folder(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "adapter_model.bin").write_bytes(b"pickle")
    with pytest.raises(Exception, match="manifest"):
        Registry(tmp_path / "reg").add(tmp_path / "junk")


SCRIPT = """
import sys
from endcloud.end.registry import Registry, kill_point
reg = Registry(sys.argv[1])
kill_point("after_gate")
reg.promote(sys.argv[2], "test")
"""


@pytest.mark.parametrize("point, switched", [("after_gate", False), ("before_switch", False),
                                              ("mid_switch", False), ("after_switch", True)])
def test_kill_9_during_promotion_leaves_old_or_new_never_dangling(tmp_path, point, switched):
    reg = Registry(tmp_path / "reg")
    old = reg.add(fake_adapter(tmp_path / "src-a", "a"))
    new = reg.add(fake_adapter(tmp_path / "src-b", "b"))
    reg.promote(old)
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(reg.root), new],
                          env={**__import__("os").environ, KILL_ENV: point}, timeout=60)
    assert proc.returncode == -9  # it really died there
    pointer = read_pointer(reg.root)  # parses: never half-written
    assert pointer["champion"] == (new if switched else old)
    verify(reg.root / "adapters" / pointer["champion"])  # and names a complete adapter
    assert json.loads((reg.root / "champion.json").read_text())["champion"] in (old, new)
    # the next promotion works despite a stray temp file from the killed one
    reg.promote(new, "retry")
    assert Registry(reg.root).champion() == new


def test_cli_promote_makes_an_outside_adapter_the_champion_and_rollback_undoes_it(tmp_path):
    """`endcloud evolve promote DIR`: the loop can start from an offline-trained adapter."""
    cfg = [f"work_dir={tmp_path / 'evolve'}"]
    run = lambda *a, opts=(): subprocess.run(  # noqa: E731
        [sys.executable, "-m", "endcloud", "evolve", *a, *cfg, *opts], capture_output=True, text=True,
        cwd=TESTS.parent)
    bad = tmp_path / "not-an-adapter"
    bad.mkdir()
    out = run("promote", str(bad))
    assert out.returncode != 0 and "Traceback" not in out.stderr and str(bad) in out.stderr
    out = run("promote", str(fake_adapter(tmp_path / "src", "a")), opts=("--reason", "offline distillation"))
    assert out.returncode == 0, out.stderr
    aid = json.loads(out.stdout)["champion"]
    reg = Registry(tmp_path / "evolve" / "registry")
    assert reg.champion() == aid and reg.pointer()["reason"] == "offline distillation"
    assert run("rollback").returncode == 0 and reg.champion() is None
