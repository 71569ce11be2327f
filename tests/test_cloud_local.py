"""The embedded teacher: `cloud.base_url=local` makes the label job start `serve-local` on a free
loopback port (here serving the tiny model, no download), label through it, and stop it - also
when the job fails. Plus the default-model and backend-fallback choices of the server."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest

from endcloud import models
from endcloud.cloud import label as label_mod
from endcloud.cloud import server as server_mod
from endcloud.cloud.client import CloudClient
from endcloud.cloud.config import CloudConfig, LabelConfig, PromptConfig
from endcloud.end import runtime
from endcloud.errors import CloudError
from endcloud.config import load_config
from endcloud.records import Sample

MSGS = [{"role": "user", "content": "我的订单什么时候发货？"}]


def tiny_cloud(model_dir: Path, **kw) -> CloudConfig:
    return CloudConfig(base_url="local", local_model=str(model_dir), model="tiny", max_tokens=4,
                       temperature=0.0, reject_truncated=False, concurrency=1, deadline_s=60,
                       max_attempts=1, local_start_timeout_s=120, **kw)


def assert_stopped(url: str) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.get(url.removesuffix("/v1") + "/health", timeout=2)


@pytest.fixture
def started_urls(monkeypatch) -> list[str]:
    """Every URL the label job's local teacher served at (to check it is gone afterwards)."""
    urls: list[str] = []
    real = server_mod.server_process

    def spy(*args, **kw):
        ctx = real(*args, **kw)

        class Recorder:
            def __enter__(self):
                urls.append(ctx.__enter__())
                return urls[-1]

            def __exit__(self, *exc):
                return ctx.__exit__(*exc)

        return Recorder()

    monkeypatch.setattr(server_mod, "server_process", spy)
    return urls


def test_local_and_empty_base_url_mean_the_embedded_teacher():
    assert CloudConfig(base_url="").is_local and CloudConfig(base_url="local").is_local
    assert not CloudConfig(base_url="http://127.0.0.1:8765/v1").is_local
    assert load_config(LabelConfig, Path(__file__).parents[1] / "configs" / "label.yaml").cloud.is_local


@pytest.mark.slow
def test_label_job_starts_labels_through_and_stops_the_local_teacher(tiny_model_dir, tmp_path, started_urls):
    samples = tmp_path / "s.jsonl"
    with samples.open("w", encoding="utf-8") as fh:
        for i in range(6):
            s = Sample(f"s{i}", f"sess{i}", [], f"第{i}个问题：衣服尺码偏大吗？", f"亲，第{i}条回复~", "t", "train")
            fh.write(json.dumps(s.to_messages(), ensure_ascii=False) + "\n")
    cfg = LabelConfig(input=str(samples), output=str(tmp_path / "labels.jsonl"),
                      output_root=str(tmp_path / "runs"), store=str(tmp_path / "e.db"),
                      cloud=tiny_cloud(tiny_model_dir), prompt=PromptConfig(n_examples=2, n_retrieved=0))
    result = label_mod.run(cfg)
    assert len(started_urls) == 1 and started_urls[0].startswith("http://127.0.0.1:")
    assert_stopped(started_urls[0])
    assert result.labelled + result.quarantined == 6 and result.pending == 0
    assert result.prompt_tokens > 0 or result.quarantined == 6  # replies came from the tiny model
    saved = (result.run_dir / "config.yaml").read_text(encoding="utf-8")
    assert "127.0.0.1" in saved  # the run records the endpoint it actually used


@pytest.mark.slow
def test_the_local_teacher_is_stopped_when_the_job_fails(tiny_model_dir, started_urls):
    with pytest.raises(KeyboardInterrupt):
        with label_mod.local_teacher(tiny_cloud(tiny_model_dir)) as cloud:
            with CloudClient(cloud) as client:  # reached through exactly the same client
                assert client.chat(MSGS).model == "tiny"
            raise KeyboardInterrupt  # Ctrl-C in the middle of a job
    assert_stopped(started_urls[0])


def test_a_teacher_that_cannot_start_reports_its_log(tmp_path):
    with pytest.raises(CloudError) as err:  # a folder with no model in it: the child exits at once
        with label_mod.local_teacher(tiny_cloud(tmp_path)):
            pass
    assert err.value.kind == "local_teacher" and "neither a Hugging Face model folder" in str(err.value)


def test_no_model_means_the_embedded_default_fetched_on_demand(monkeypatch, tmp_path):
    asked = []
    monkeypatch.setattr(models, "fetch", lambda name: asked.append(name) or tmp_path / "m.gguf")
    assert server_mod.resolve_model("") == str(tmp_path / "m.gguf")
    assert asked == [models.DEFAULT_TEACHER]
    assert server_mod.resolve_model("some/folder") == "some/folder"


@pytest.mark.parametrize("installed,backend,expected", [
    (True, "auto", "llama"), (False, "auto", "hf"), (True, "transformers", "hf"), (False, "llama-cpp", "llama")])
def test_gguf_backend_choice_and_fallback_log(monkeypatch, caplog, installed, backend, expected):
    monkeypatch.setattr(server_mod, "llama_cpp_available", lambda: installed)
    monkeypatch.setattr(runtime, "LlamaCppBackend", lambda cfg: "llama")
    monkeypatch.setattr(runtime, "TransformersBackend", lambda cfg: "hf")
    with caplog.at_level(logging.INFO, logger="endcloud.cloud.server"):
        assert server_mod.load_backend("/m/teacher.gguf", backend=backend) == expected
    fell_back = "llama-cpp-python is not installed" in caplog.text
    assert fell_back == (not installed and backend == "auto")


def test_transformers_teacher_on_a_gguf_loads_the_cached_dequantized_copy(monkeypatch, tiny_model_dir):
    """The transformers fallback does not dequantize a GGUF at every start: it asks the end
    model's cache (end.models.resolve), which dequantizes once."""
    from endcloud.end import models as end_models

    asked = []
    monkeypatch.setattr(end_models, "resolve",
                        lambda cfg: asked.append(cfg.name) or (tiny_model_dir, None))
    backend = server_mod.load_backend("/models/teacher.gguf", backend="transformers")
    backend.load()
    assert asked == ["/models/teacher.gguf"]
    assert backend.generators["local"].model.config.hidden_size == 8  # resolve's folder, not the .gguf


def test_a_teacher_does_not_outlive_a_parent_killed_with_sigkill(tmp_path):
    """kill -9 runs no cleanup in the parent; the teacher notices it was orphaned and exits."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = ("import os, sys, time\n"
              "from endcloud.cloud.server import server_process\n"
              "with server_process('fake', warmup=False) as url:\n"
              "    print(url, flush=True)\n"
              "    time.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        url = parent.stdout.readline().strip()
        assert httpx.get(url + "/models", timeout=5).status_code == 200
        children = subprocess.run(["pgrep", "-P", str(parent.pid)], capture_output=True, text=True)
        (child,) = [int(x) for x in children.stdout.split()]
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        end = time.monotonic() + 10
        while time.monotonic() < end:
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.kill(child, signal.SIGKILL)
            pytest.fail("the teacher outlived its parent by 10 s")
        with pytest.raises(httpx.HTTPError):
            httpx.get(url + "/models", timeout=2)
    finally:
        if parent.poll() is None:
            parent.kill()
