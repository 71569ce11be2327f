"""Config loading: every shipped YAML loads; unknown keys and bad values are rejected by name."""

import importlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from endcloud.config import ConfigError, dump_yaml, from_dict, load_config
from endcloud.data.config import PrepareConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

# Every file in configs/ must be listed here with the dataclass it configures.
CONFIG_CLASSES = {
    "data.yaml": "endcloud.data.config:PrepareConfig",
    "label.yaml": "endcloud.cloud.config:LabelConfig",
    "train.yaml": "endcloud.end.config:TrainConfig",
    "train-ddp.yaml": "endcloud.end.config:TrainConfig",
    "generate.yaml": "endcloud.end.config:GenerateConfig",
    "paper.yaml": "endcloud.experiment.config:ExperimentConfig",
    "paper-gpu.yaml": "endcloud.experiment.config:ExperimentConfig",
    "tiny.yaml": "endcloud.experiment.config:ExperimentConfig",
    "eval.yaml": "endcloud.evaluate.config:EvalConfig",
    "serve.yaml": "endcloud.serve.config:ServeConfig",
    "evolve.yaml": "endcloud.evolve.config:EvolveConfig",
    "kb.yaml": "endcloud.knowledge.config:KBConfig",
    "matcher.yaml": "endcloud.evaluate.matcher.config:MatcherConfig",
    "demo.yaml": "endcloud.demo:DemoConfig",
    "demo-tiny.yaml": "endcloud.demo:DemoConfig",
}


def _cls(spec):
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_every_shipped_config_loads(name, tmp_path):
    assert name in CONFIG_CLASSES, f"configs/{name} has no entry in CONFIG_CLASSES"
    cls = _cls(CONFIG_CLASSES[name])
    cfg = load_config(cls, CONFIGS / name)
    assert type(cfg) is cls
    # what a run writes next to its outputs (dump_yaml) loads back to the very same config
    again = tmp_path / name
    again.write_text(dump_yaml(cfg), encoding="utf-8")
    assert load_config(cls, again) == cfg


def test_overrides_are_typed_and_dotted():
    cfg = load_config(PrepareConfig, CONFIGS / "data.yaml",
                      ["split.seed=7", "context_turns=3", "privacy.enabled=false",
                       "output_formats=[messages,sharegpt]"])
    assert cfg.split.seed == 7 and cfg.context_turns == 3 and cfg.privacy.enabled is False
    assert cfg.output_formats == ["messages", "sharegpt"]


@pytest.mark.parametrize("override, key", [
    ("contxt_turns=3", "contxt_turns"),
    ("split.sed=1", "split.sed"),
    ("context_turns=three", "context_turns"),
    ("privacy.enabled=maybe", "privacy.enabled"),
    ("clean.urls=hide", "clean.urls"),
    ("split.train=0.5", "split"),
    ("length.max_input_tokens=0", "length.max_input_tokens"),
    ("sources=[{format: jddc2019}]", "path"),
    ("sources=[{format: nope, path: x}]", "sources[0].format"),
    ("corpus=jddc", "corpus"),
])
def test_bad_keys_and_values_are_named(override, key):
    with pytest.raises(ConfigError) as err:
        load_config(PrepareConfig, CONFIGS / "data.yaml", [override])
    assert key in str(err.value)


def test_named_corpus_replaces_sources():
    cfg = load_config(PrepareConfig, CONFIGS / "data.yaml", ["corpus=jddc2018"])
    assert [s.format for s in cfg.sources] == ["jddc2018", "jddc2018"]
    assert cfg.sources[0].path.endswith("train.enc.gz")


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(PrepareConfig, tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(PrepareConfig, bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(PrepareConfig, listy)
    with pytest.raises(ConfigError, match="key=value"):
        load_config(PrepareConfig, None, ["novalue"])


def test_int_is_accepted_for_float_but_bool_is_not_int():
    @dataclass
    class C:
        x: float = 0.0
        n: int = 0
        tags: list[str] = field(default_factory=list)

    assert from_dict(C, {"x": 1}).x == 1.0
    with pytest.raises(ConfigError, match="n"):
        from_dict(C, {"n": True})
    with pytest.raises(ConfigError, match=r"tags\[1\]"):
        from_dict(C, {"tags": ["a", [1]]})


def test_exponent_without_a_dot_is_a_float(tmp_path):
    """PyYAML (YAML 1.1) reads `2e-4` as a string; a float key takes it, anything else stays an error."""
    from endcloud.end.config import TrainConfig

    cfg = tmp_path / "t.yaml"
    cfg.write_text("lr: 5e-5\ndata: {natural: train.jsonl}\n", encoding="utf-8")
    assert load_config(TrainConfig, cfg, []).lr == 5e-5
    assert load_config(TrainConfig, cfg, ["lr=2e-4"]).lr == 2e-4

    @dataclass
    class C:
        x: float = 0.0

    assert from_dict(C, {"x": "-1E+2"}).x == -100.0 and from_dict(C, {"x": ".5e1"}).x == 5.0
    for bad in ("lr=2e", "lr=e-4", "lr=fast", "lr=1e-4x"):
        with pytest.raises(ConfigError, match="lr"):
            load_config(TrainConfig, cfg, [bad])
