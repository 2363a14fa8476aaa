"""``format-proxy serve`` as a real process: config file, free ports, readiness, logs, metrics.

Typical use (fixtures in ``tests/conftest.py`` wrap this)::

    proxy = ProxyProcess.start(workdir, upstream=backend.endpoint,
                               credentials=backend.credentials)
    s3 = boto3_client(proxy)          # tests.support.clients
    ...
    proxy.scrape().value("format_proxy_requests_total", operation="PutObject", code="200")
    proxy.terminate()                 # SIGTERM, wait, return the exit status
"""

from __future__ import annotations

import itertools
import json
import signal
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.backends import REGION, VENV_BIN, Credentials, isolated_aws_env
from tests.support.ports import LOOPBACK, free_port
from tests.support.processes import ManagedProcess

FORMAT_PROXY = VENV_BIN / "format-proxy"

_counter = itertools.count(1)


@dataclass(frozen=True)
class TLSFiles:
    """A server certificate for 127.0.0.1/localhost and the CA that clients should trust."""

    cert: Path  # server certificate chain (PEM)
    key: Path  # server private key (PEM)
    ca: Path  # CA certificate for clients (``verify=``, ``AWS_CA_BUNDLE``)

    @classmethod
    def create(cls, directory: Path) -> TLSFiles:
        import trustme

        directory.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA()
        server = ca.issue_cert("127.0.0.1", "localhost", "*.localhost")
        paths = cls(directory / "server.pem", directory / "server.key", directory / "ca.pem")
        server.private_key_pem.write_to_path(str(paths.key))
        server.cert_chain_pems[0].write_to_path(str(paths.cert))
        for extra in server.cert_chain_pems[1:]:
            extra.write_to_path(str(paths.cert), append=True)
        ca.cert_pem.write_to_path(str(paths.ca))
        return paths


class Samples:
    """Parsed Prometheus samples: ``(name, labels) -> value``."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: list[tuple[str, dict[str, str], float]] = []
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                self.samples.append((s.name, dict(s.labels), s.value))

    def find(self, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
        """Samples called ``name`` whose labels include ``labels``."""
        return [
            (lab, v)
            for n, lab, v in self.samples
            if n == name and all(lab.get(k) == want for k, want in labels.items())
        ]

    def value(self, name: str, **labels: str) -> float:
        """Sum of the matching samples' values (0.0 if none match, as for an unseen counter)."""
        return sum(v for _, v in self.find(name, **labels))

    def names(self) -> set[str]:
        return {n for n, _, _ in self.samples}


class ProxyProcess:
    """One running ``format-proxy serve`` with its own config file, ports and logs."""

    def __init__(
        self,
        process: ManagedProcess,
        *,
        config_path: Path,
        config: dict[str, Any],
        port: int,
        metrics_port: int,
        tls: TLSFiles | None,
        credentials: Credentials | None,
    ) -> None:
        self.process = process
        self.config_path = config_path
        self.config = config
        self.port = port
        self.metrics_port = metrics_port
        self.tls = tls
        self.credentials = credentials

    # --- start -------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        workdir: Path,
        *,
        upstream: str,
        credentials: Credentials | None,
        region: str = REGION,
        tls: TLSFiles | None = None,
        app_version: str | None = None,
        routes: Sequence[Mapping[str, Any]] = (),
        upstream_options: Mapping[str, Any] | None = None,
        limits: Mapping[str, Any] | None = None,
        log_level: str = "info",
        shutdown_grace_seconds: float | None = None,
        extra_config: Mapping[str, Any] | None = None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        name: str | None = None,
        wait: bool = True,
        ready_timeout: float = 30.0,
    ) -> ProxyProcess:
        """Write a config file and start the proxy on free ports; wait for ``/readyz``.

        ``credentials`` become the proxy's own (``AWS_ACCESS_KEY_ID``... in its environment,
        nothing else visible); ``None`` starts it with no credentials at all.
        """
        name = name or f"proxy-{next(_counter)}"
        workdir = workdir / name
        workdir.mkdir(parents=True, exist_ok=True)
        port, metrics_port = free_port(), free_port()
        config: dict[str, Any] = {
            "listen": f"{LOOPBACK}:{port}",
            "metrics_listen": f"{LOOPBACK}:{metrics_port}",
            "upstream": {"endpoint": upstream, "region": region, **(upstream_options or {})},
            "log_level": log_level,
            "routes": [dict(r) for r in routes],
        }
        if app_version is not None:
            config["app_version"] = app_version
        if tls is not None:
            config["tls"] = {"cert": str(tls.cert), "key": str(tls.key)}
        if limits:
            config["limits"] = dict(limits)
        if shutdown_grace_seconds is not None:
            config["shutdown_grace_seconds"] = shutdown_grace_seconds
        config.update(extra_config or {})
        config_path = workdir / "config.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))

        proc_env = isolated_aws_env()
        if credentials is not None:
            proc_env.update(credentials.env())
        proc_env.update(env or {})
        argv = [str(FORMAT_PROXY), "serve", "--config", str(config_path), *extra_args]
        process = ManagedProcess(name, argv, workdir, env=proc_env, cwd=workdir)
        proxy = cls(
            process,
            config_path=config_path,
            config=config,
            port=port,
            metrics_port=metrics_port,
            tls=tls,
            credentials=credentials,
        )
        if wait:
            try:
                proxy.wait_ready(ready_timeout)
            except BaseException:
                process.stop(grace=1.0)
                raise
        return proxy

    def wait_ready(self, timeout: float = 30.0) -> None:
        self.process.wait_until(lambda: self.probe("/readyz") == 200, timeout=timeout, what="ready")

    # --- addresses ---------------------------------------------------------------------

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def endpoint(self) -> str:
        """The data listener's URL, for ``endpoint_url`` / ``AWS_ENDPOINT_URL_S3``."""
        return f"{self.scheme}://{LOOPBACK}:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{LOOPBACK}:{self.metrics_port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def psutil(self) -> psutil.Process:
        return psutil.Process(self.process.pid)

    def rss(self) -> int:
        return self.psutil().memory_info().rss

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        return ssl.create_default_context(cafile=str(self.tls.ca))

    # --- health and metrics ---------------------------------------------------------------

    def probe(self, path: str) -> int:
        """Status of a GET on the metrics listener (0 if it doesn't answer)."""
        try:
            with urllib.request.urlopen(self.metrics_url + path, timeout=2) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except (urllib.error.URLError, OSError):
            return 0

    def metrics_text(self) -> str:
        with urllib.request.urlopen(self.metrics_url + "/metrics", timeout=5) as resp:
            return resp.read().decode()

    def scrape(self) -> Samples:
        """Scrape ``/metrics`` and parse it with prometheus_client's text parser."""
        return Samples(self.metrics_text())

    # --- logs ---------------------------------------------------------------------------

    def output(self) -> str:
        """Everything the proxy printed (stdout + stderr), raw."""
        return self.process.output()

    def log_lines(self) -> list[dict[str, Any]]:
        """Every JSON log line the proxy printed, parsed (non-JSON lines are skipped)."""
        out: list[dict[str, Any]] = []
        for line in self.output().splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out

    def stdout_lines(self) -> list[str]:
        self.process.output()  # flushes
        return self.process.stdout_path.read_text(errors="replace").splitlines()

    def non_json_stdout_lines(self) -> list[str]:
        """Lines on stdout that are not JSON objects (the log stream should have none)."""
        return [line for line in self.stdout_lines() if line.strip() and not _is_json_object(line)]

    def wait_for_log(
        self, predicate: Callable[[dict[str, Any]], bool], *, count: int = 1, timeout: float = 10
    ) -> list[dict[str, Any]]:
        """Wait until ``count`` JSON log lines match ``predicate`` and return them.

        The access-log line is written after the response has gone out, so a client can see
        its answer a moment before the proxy logs it.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = [line for line in self.log_lines() if predicate(line)]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def find_in_output(self, needles: Iterable[str]) -> list[str]:
        """Those of ``needles`` that appear anywhere in the proxy's output."""
        text = self.output()
        return [n for n in needles if n and n in text]

    # --- stop ---------------------------------------------------------------------------

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM the proxy (not its group) and wait for it to exit; return the status."""
        if self.process.alive():
            self.process.popen.send_signal(signal.SIGTERM)
            self.process.wait(timeout)
        self.process.stop(grace=0)
        return self.process.popen.returncode

    def stop(self) -> None:
        self.process.stop(grace=5.0)

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def alive(self) -> bool:
        return self.process.alive()


def _is_json_object(line: str) -> bool:
    if not line.startswith("{"):
        return False
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def run_proxy_command(
    args: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 30.0
) -> Any:
    """Run ``format-proxy ARGS`` to completion (for CLI/exit-status tests)."""
    import subprocess

    proc_env = isolated_aws_env()
    proc_env.update(env or {})
    return subprocess.run(
        [str(FORMAT_PROXY), *args],
        env=proc_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
