"""Shadow mode's settings: defaults, and a precise error (exit 2 from ``check``) for bad ones."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from proxy.config import load_config
from proxy.errors import ConfigError
from tests.datapath.orders import orders_route

FORMAT_PROXY = Path(sys.executable).with_name("format-proxy")


def _write(tmp_path: Path, route: dict[str, Any] | None = None, **top: Any) -> Path:
    doc = {"app_version": "v1", "routes": [orders_route("shop", **(route or {}))], **top}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_defaults(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path), environ={})
    (route,) = config.routes
    assert route.mode == "active"
    assert (route.shadow.sample, route.shadow.max_bytes) == (1.0, None)
    assert route.shadow.limit(config.limits.max_translate_bytes) == 1024**2
    assert route.shadow.limit(1000) == 1000  # never above limits.max_translate_bytes
    s = config.shadow
    assert (s.queue, s.concurrency, s.max_buffered_bytes, s.log_interval) == (
        64,
        1,
        16 * 1024**2,
        10,
    )


def test_a_shadow_route_is_parsed(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {"mode": "shadow", "shadow": {"sample": 0.25, "max_bytes": "256KiB"}},
        shadow={"queue": 8, "concurrency": 2, "max_buffered_bytes": "4MiB"},
    )
    config = load_config(path, environ={})
    (route,) = config.routes
    assert route.mode == "shadow" and route.shadow.sample == 0.25
    assert route.shadow.max_bytes == 256 * 1024
    assert (config.shadow.queue, config.shadow.concurrency) == (8, 2)
    assert config.shadow.max_buffered_bytes == 4 * 1024**2


BAD = [
    ({"mode": "dark"}, {}, "routes[0].mode", "'active' or 'shadow'"),
    ({"mode": "shadow", "shadow": {"sample": 1.5}}, {}, "routes[0].shadow.sample", "1"),
    ({"mode": "shadow", "shadow": {"sample": -0.1}}, {}, "routes[0].shadow.sample", "0"),
    ({"mode": "shadow", "shadow": {"samples": 1}}, {}, "routes[0].shadow.samples", "'sample'"),
    ({"mode": "shadow", "shadow": {"max_bytes": "lots"}}, {}, "shadow.max_bytes", "byte size"),
    (
        {"mode": "shadow", "shadow": {"max_bytes": "128MiB"}},
        {"shadow": {"max_buffered_bytes": "256MiB"}},
        "routes[0].shadow.max_bytes",
        "limits.max_translate_bytes",
    ),
    (
        {"mode": "shadow", "shadow": {"max_bytes": "2MiB"}},
        {"shadow": {"max_buffered_bytes": "1MiB"}},
        "routes[0].shadow.max_bytes",
        "shadow.max_buffered_bytes",
    ),
    ({}, {"shadow": {"queue": 0}}, "shadow.queue", "greater than or equal to 1"),
    ({}, {"shadow": {"concurrency": 0}}, "shadow.concurrency", "greater than or equal to 1"),
    ({}, {"shadow": {"log_interval": 0}}, "shadow.log_interval", "greater than 0"),
    ({}, {"shadow": {"quue": 3}}, "shadow.quue", "'queue'"),
]


@pytest.mark.parametrize(("route", "top", "key", "says"), BAD, ids=[b[2] + "-" + b[3] for b in BAD])
def test_bad_values_name_the_key(
    tmp_path: Path, route: dict[str, Any], top: dict[str, Any], key: str, says: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, route, **top), environ={})
    message = str(info.value)
    assert message.startswith(key) or key in message, message
    assert says in message, message


def test_check_exits_2_on_a_bad_shadow_setting(tmp_path: Path) -> None:
    path = _write(tmp_path, {"mode": "shadow", "shadow": {"sample": 2}})
    proc = subprocess.run(
        [str(FORMAT_PROXY), "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "routes[0].shadow.sample" in proc.stderr


def test_check_accepts_a_shadow_route(tmp_path: Path) -> None:
    path = _write(tmp_path, {"mode": "shadow"})
    proc = subprocess.run(
        [str(FORMAT_PROXY), "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "route orders: mapping compiled" in proc.stdout
