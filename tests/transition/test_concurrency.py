"""migrate against other writers and against ``kill -9``: nothing lost, nothing written twice.

- A write that lands between migrate's read and its write is never overwritten (the backend
  refuses the If-Match write); the object is read afresh and migrated from the new content.
- Migrate under fire: writers keep rewriting keys through a v1 and a v2 sidecar (real proxy
  processes) while migrate runs; every key's final content is the writer's last write.
- ``kill -9`` at random points, three times, then a final run: every object migrated once
  (exactly two versions per key on a versioned bucket), metadata and tags kept.
"""

from __future__ import annotations

import itertools
import json
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from proxy.config import load_config
from proxy.datapath.routes import compile_routes
from proxy.transition.client import make_client
from proxy.transition.rewrite import Plan, Rewriter
from proxy.transition.state import NoState
from tests.datapath.orders import big_order, orders_route
from tests.support.backends import REGION, Backend
from tests.support.clients import boto3_client
from tests.transition.conftest import (
    json_bytes,
    order,
    put_xml,
    run_cli,
    start_cli,
    stored,
    xml_bytes,
)

MiB = 1024 * 1024


@pytest.fixture
def rewriter_for(backend: Backend, monkeypatch: pytest.MonkeyPatch, config_for: Any):
    for name, value in backend.credentials.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    def make(bucket: str, before_write: Any, **plan: Any) -> Rewriter:
        config = load_config(config_for(bucket))
        [route] = compile_routes(config)
        client = make_client(config, pool=2)
        options = {"max_bytes": config.limits.max_translate_bytes, **plan}
        return Rewriter(
            client,
            Plan(bucket=bucket, target="json", translator=route.mapping, **options),
            NoState(),
            before_write=before_write,
        )

    return make


@pytest.mark.parametrize("size", ["small", "multipart"])
def test_a_write_between_read_and_write_is_never_overwritten(
    backend: Backend, bucket: str, rewriter_for: Any, size: str
):
    key = "orders/contended.xml"
    first = big_order(1, 8 * MiB) if size == "multipart" else order(1)
    put_xml(backend, bucket, key, first)
    writes: list[dict[str, Any]] = []

    def another_writer(k: str) -> None:
        if len(writes) < 2:  # two updates by a v1 app, each after migrate has read
            writes.append(order(100 + len(writes)))
            put_xml(backend, bucket, k, writes[-1])

    result = rewriter_for(bucket, another_writer, multipart_threshold=1 * MiB).migrate(key)
    assert (result.outcome, result.conflicts) == ("rewritten", 2)
    head, body = stored(backend, bucket, key)
    assert json.loads(body) == writes[-1]  # migrated from the last write, not a stale read
    assert head["Metadata"]["format"] == "json"
    assert backend.direct.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_a_concurrent_json_write_is_kept_byte_for_byte(
    backend: Backend, bucket: str, rewriter_for: Any
):
    key = "orders/contended.xml"
    put_xml(backend, bucket, key, order(1))
    newer = json_bytes(order(2))

    def v2_writer(k: str) -> None:
        backend.direct.put_object(
            Bucket=bucket, Key=k, Body=newer, Metadata={"format": "json"}, ContentType="text/x"
        )

    result = rewriter_for(bucket, v2_writer).migrate(key)
    assert (result.outcome, result.reason, result.conflicts) == ("skipped", "already", 1)
    assert stored(backend, bucket, key)[1] == newer


def test_an_object_that_keeps_changing_is_given_up_untouched(
    backend: Backend, bucket: str, rewriter_for: Any
):
    key = "orders/hot.xml"
    put_xml(backend, bucket, key, order(1))
    n = itertools.count(10)
    last: list[dict[str, Any]] = []

    def always(k: str) -> None:
        last.append(order(next(n)))
        put_xml(backend, bucket, k, last[-1])

    result = rewriter_for(bucket, always, max_conflicts=3).migrate(key)
    assert (result.outcome, result.reason, result.conflicts) == ("failed", "conflict_limit", 4)
    assert stored(backend, bucket, key)[1] == xml_bytes(last[-1])


# --- migrate under fire ---------------------------------------------------------------------


class Writer(threading.Thread):
    """Rewrites its own keys through the v1 (XML) and v2 (JSON) sidecars until stopped."""

    def __init__(self, keys: list[str], clients: dict[str, Any], bucket: str, seed: int) -> None:
        super().__init__(daemon=True)
        self.keys, self.clients, self.bucket = keys, clients, bucket
        self.rng = random.Random(seed)
        self.log: dict[str, dict[str, Any]] = {}
        self.writes = 0
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        n = itertools.count(1000 * (1 + self.rng.randrange(1000)))
        try:
            while not self.stop.is_set():
                key = self.rng.choice(self.keys)
                version = self.rng.choice(("v1", "v2"))
                doc = order(next(n))
                body = xml_bytes(doc) if version == "v1" else json_bytes(doc)
                self.clients[version].put_object(Bucket=self.bucket, Key=key, Body=body)
                self.log[key] = doc
                self.writes += 1
        except BaseException as exc:
            self.error = exc


def test_migrate_under_fire(backend: Backend, bucket: str, config_for: Any, start_proxy: Any):
    keys = [f"orders/{i:02d} fire+ü.xml" for i in range(60)]
    initial = {key: order(i) for i, key in enumerate(keys)}
    for key, doc in initial.items():
        put_xml(backend, bucket, key, doc)
    route = orders_route(bucket, store="as-written")
    clients = {
        v: boto3_client(start_proxy(app_version=v, routes=[route], name=f"writer-{v}"))
        for v in ("v1", "v2")
    }
    hot = keys[:24]  # two writers, twelve keys each; the other keys only migrate touches
    writers = [Writer(hot[i::2], clients, bucket, seed=i) for i in range(2)]
    config = config_for(bucket)
    args = ["migrate", "--config", str(config), "--route", "orders", "--to", "json"]
    for w in writers:
        w.start()
    time.sleep(0.5)
    try:
        under_fire = run_cli(backend, [*args, "--concurrency", "8", "--max-rps", "60"])
    finally:
        for w in writers:
            w.stop.set()
        for w in writers:
            w.join(30)
    for w in writers:
        assert w.error is None, w.error
        assert w.writes > 20
    assert under_fire.summary["failed"] == 0, under_fire.problems
    final = run_cli(backend, args)  # the one more pass that catches writes after the first
    assert final.code == 0 and final.summary["failed"] == 0
    expected = dict(initial)
    for w in writers:
        expected.update(w.log)
    for key, doc in expected.items():
        head, body = stored(backend, bucket, key)
        assert head["Metadata"]["format"] == "json", key
        assert json.loads(body) == doc, key  # the writer's last write, nothing stale
    print(f"under fire: {under_fire.summary}, writes={sum(w.writes for w in writers)}")


# --- kill -9 ----------------------------------------------------------------------------------


def test_kill_9_three_times_then_finish(backend: Backend, config_for: Any, tmp_path: Path):
    bucket = backend.new_bucket(versioned=True)
    rng = random.Random(7)
    docs = {f"orders/k9 {i:03d}+é.xml": order(i) for i in range(90)}
    docs["orders/k9 big-1.xml"] = big_order(1, 3 * MiB)
    docs["orders/k9 big-2.xml"] = big_order(2, 3 * MiB)
    for i, (key, doc) in enumerate(docs.items()):
        put_xml(backend, bucket, key, doc, Metadata={"n": str(i)}, CacheControl="no-cache")
        backend.direct.put_object_tagging(
            Bucket=bucket, Key=key, Tagging={"TagSet": [{"Key": "n", "Value": str(i)}]}
        )
    state = tmp_path / "state.jsonl"
    args = ["migrate", "--config", str(config_for(bucket)), "--route", "orders", "--to", "json",
            "--state", str(state), "--multipart-threshold", "1MiB"]  # fmt: skip
    for _ in range(3):
        proc = start_cli(backend, [*args, "--concurrency", "4", "--max-rps", "40"])
        time.sleep(rng.uniform(0.8, 2.5))
        assert proc.poll() is None, "finished before the kill"
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    final = run_cli(backend, args)
    assert final.code == 0 and final.summary["failed"] == 0, final.problems
    for i, (key, doc) in enumerate(docs.items()):
        head, body = stored(backend, bucket, key)
        assert json.loads(body) == doc, key
        assert head["Metadata"] == {"n": str(i), "format": "json"}
        assert head["CacheControl"] == "no-cache"
        tags = backend.direct.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
        assert tags == [{"Key": "n", "Value": str(i)}]
    versions: dict[str, int] = {}
    for page in backend.direct.get_paginator("list_object_versions").paginate(
        Bucket=bucket, Prefix="orders/"
    ):
        for v in page.get("Versions", []):
            versions[v["Key"]] = versions.get(v["Key"], 0) + 1
    assert versions == {key: 2 for key in docs}  # the original and exactly one rewrite
    assert REGION
