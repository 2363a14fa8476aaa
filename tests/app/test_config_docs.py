"""config/example.yaml is valid and, with docs/configuration.md, covers every config key."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from proxy.config import OVERRIDES, Config, load_config

ROOT = Path(__file__).resolve().parents[2]


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        if name == "base_dir":
            continue
        ann = field.annotation
        if (
            isinstance(ann, type)
            and issubclass(ann, BaseModel)
            and name not in ("listen", "metrics_listen")
        ):
            out += _keys(ann, f"{prefix}{name}.")
        elif name != "routes":
            out.append(prefix + name)
    return out


def test_example_config_is_valid_and_complete() -> None:
    cfg = load_config(ROOT / "config" / "example.yaml", environ={})
    assert cfg.listen.port == 15480 and cfg.routes == ()
    text = (ROOT / "config" / "example.yaml").read_text()
    for key in _keys(Config):
        assert f"{key.rsplit('.', 1)[-1]}:" in text, key


def test_configuration_doc_lists_every_key_flag_and_env() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    for key in _keys(Config):
        assert f"`{key}`" in doc or f"`{key.split('.')[0]}.{key.split('.')[-1]}`" in doc, key
    for name in OVERRIDES:
        assert f"FORMAT_PROXY_{name.upper()}" in doc, name
        assert f"--{name.replace('_', '-')}" in doc, name


def test_local_config_is_embedded() -> None:
    cfg = load_config(ROOT / "config" / "local.yaml", environ={})
    assert cfg.upstream.is_embedded
    assert cfg.listen.port == 15480
