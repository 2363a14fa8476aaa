"""Shared fixtures: real S3 backends, the proxy as a real process, clean-up and log tails.

Documented in ``tests/support/README.md``. Expensive processes are session-scoped (backends) or
module-scoped (``proxy``); everything started here is stopped at session end even when tests
fail, and a failing test's report carries the tail of every live process's log.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from tests.support.backends import Backend, start_moto, start_seaweedfs
from tests.support.inprocess import fake_upstream, start_inprocess_proxy
from tests.support.processes import live_processes, stop_all
from tests.support.proxy import ProxyProcess, TLSFiles

# In-process proxies (tests/support/inprocess.py); `start_proxy` below is a real process.
__all__ = ["fake_upstream", "start_inprocess_proxy"]

BACKENDS = ("moto", "seaweedfs")

# CI explores a fixed, reproducible set of examples (a red CI run is reproducible, never a dice
# roll); local runs keep hypothesis's random exploration and its example database.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


# --- clean-up and diagnostics ------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def _stop_every_process() -> Iterator[None]:
    """Session-end safety net: no process a fixture started outlives the run."""
    yield
    stop_all()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed:
        for proc in live_processes():
            report.sections.append((f"log tail: {proc.name} (pid {proc.pid})", proc.tail(30)))
    return report


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/tests/e2e/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.e2e)


# --- backends ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def e2e_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Session directory holding process logs, configs and backend data."""
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
def moto_backend(e2e_dir: Path) -> Iterator[Backend]:
    """``moto_server`` with SigV4 enforced (IAM user + key; wrong keys are rejected)."""
    backend = start_moto(e2e_dir / "logs")
    yield backend
    backend.stop()


@pytest.fixture(scope="session")
def seaweedfs_backend(e2e_dir: Path) -> Iterator[Backend]:
    """SeaweedFS ``weed server -filer -s3`` (verifies SigV4); slow to start, so session scope."""
    backend = start_seaweedfs(e2e_dir / "seaweedfs", e2e_dir / "logs")
    yield backend
    backend.stop()


@pytest.fixture(scope="session")
def seaweedfs_tls_backend(e2e_dir: Path, tls_files: TLSFiles) -> Iterator[Backend]:
    """SeaweedFS serving S3 over HTTPS only (certificate from ``tls_files``)."""
    backend = start_seaweedfs(
        e2e_dir / "seaweedfs-tls",
        e2e_dir / "logs",
        name="seaweedfs-tls",
        tls=(tls_files.cert, tls_files.key, tls_files.ca),
    )
    yield backend
    backend.stop()


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each backend in turn (tests using it run once per backend)."""
    return request.getfixturevalue(f"{request.param}_backend")


@pytest.fixture
def bucket(backend: Backend) -> str:
    """A fresh, empty bucket on ``backend``."""
    return backend.new_bucket()


# --- the proxy -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tls_files(e2e_dir: Path) -> TLSFiles:
    """A throw-away CA and a server certificate for 127.0.0.1 / localhost (trustme)."""
    return TLSFiles.create(e2e_dir / "tls")


ProxyStarter = Callable[..., ProxyProcess]


def _starter(
    workdir: Path, started: list[ProxyProcess], default_backend: Backend | None
) -> ProxyStarter:
    def start(backend: Backend | None = None, **kwargs: Any) -> ProxyProcess:
        target = backend or default_backend
        if target is not None:
            kwargs.setdefault("upstream", target.endpoint)
            kwargs.setdefault("credentials", target.credentials)
            kwargs.setdefault("region", target.region)
        proxy = ProxyProcess.start(workdir, **kwargs)
        started.append(proxy)
        return proxy

    return start


@pytest.fixture(scope="session")
def proxy_factory(e2e_dir: Path) -> Iterator[ProxyStarter]:
    """``start(backend=None, **ProxyProcess.start kwargs)``; proxies live until session end."""
    started: list[ProxyProcess] = []
    yield _starter(e2e_dir / "proxies", started, None)
    for p in started:
        p.stop()


@pytest.fixture
def start_proxy(e2e_dir: Path, request: pytest.FixtureRequest) -> Iterator[ProxyStarter]:
    """Like ``proxy_factory`` but the proxies stop when the test ends.

    Defaults to the test's ``backend`` when the test uses that fixture.
    """
    started: list[ProxyProcess] = []
    default = request.getfixturevalue("backend") if "backend" in request.fixturenames else None
    yield _starter(e2e_dir / "proxies", started, default)
    for p in started:
        p.stop()


@pytest.fixture(scope="module")
def proxy(backend: Backend, proxy_factory: ProxyStarter) -> Iterator[ProxyProcess]:
    """A plain passthrough proxy (no routes) in front of ``backend``, shared by a module."""
    p = proxy_factory(backend)
    yield p
    p.stop()
