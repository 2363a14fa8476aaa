"""Document work isolated from the event loop: the time budget (``too_slow``) with the real
engine in worker processes, the memory of failed translations, and the global byte budgets
(503 SlowDown, counted) of translations in flight and of the multipart spool."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import yaml

from proxy.config import load_config
from proxy.datapath.documents import ClientDigests
from proxy.datapath.engine import DocumentWorker
from proxy.datapath.observe import RecordingObserver
from proxy.errors import TranslationError
from tests.datapath.conftest import BUCKET, route
from tests.datapath.fakes import FakeS3, json_doc, xml_doc
from tests.datapath.test_multipart import create, upload_part

MiB = 1024 * 1024
BUDGET = 0.5


def many_attributes(n: int = 40_000) -> bytes:
    """lxml reads attribute values in quadratic time: seconds of CPU in a few hundred KiB."""
    return ("<doc " + " ".join(f'a{i}="v"' for i in range(n)) + "/>").encode()


def many_keys(n: int = 400_000) -> bytes:
    return json.dumps({"doc": {f"k{i}": "v" for i in range(n)}}).encode()


@pytest.fixture
async def engine(tmp_path: Path):
    config_file = tmp_path / "proxy.yaml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "app_version": "v2",
                "routes": [route(mapping={})],
                "limits": {"translate_timeout": BUDGET, "translate_workers": 1},
            }
        )
    )
    cfg = load_config(str(config_file), environ={})
    observer = RecordingObserver()
    worker = DocumentWorker(observer, cfg)
    assert worker.pool is not None
    await worker.pool.start()
    yield worker, cfg.routes[0], observer
    worker.close()


async def test_an_expensive_document_is_too_slow_within_the_budget(engine):
    worker, docs, observer = engine
    ok = await worker.render(docs, b"<doc><a>1</a></doc>", "xml", "json")
    assert json.loads(ok.body) == {"doc": {"a": "1"}}
    before = worker.pool.pids
    attributes, keys = many_attributes(), many_keys()
    for data, source, target in [(attributes, "xml", "json"), (keys, "json", "xml")]:
        await worker.pool.start()  # the budget runs once a worker has the document
        started = time.monotonic()
        with pytest.raises(TranslationError) as info:
            await worker.render(docs, data, source, target)
        assert time.monotonic() - started < BUDGET + 1.5
        assert info.value.reason == "too_slow"
        assert "limits.translate_timeout" in info.value.detail
    await worker.pool.start()
    started = time.monotonic()
    with pytest.raises(TranslationError) as info:
        await worker.prepare_write(docs, keys, writer="json", store="xml", digests=ClientDigests())
    assert info.value.reason == "too_slow" and time.monotonic() - started < BUDGET + 1.5
    # Every slow document cost its worker; a new one serves the next request.
    again = await worker.render(docs, b"<doc><a>2</a></doc>", "xml", "json")
    assert json.loads(again.body) == {"doc": {"a": "2"}}
    assert not set(worker.pool.pids) & set(before)
    assert [w[0] for w in observer.work] == ["xml_to_json", "xml_to_json"]


# --- the memory of failures --------------------------------------------------------------------


async def test_a_failed_translation_fails_fast_on_the_next_read(make_proxy, fake_s3: FakeS3):
    fake_s3.put(BUCKET, "docs/bad", b"<other/>", x_amz_meta_format="xml")
    p = await make_proxy()
    answers = []
    for _ in range(3):
        async with p.request("GET", "docs/bad") as r:
            text = re.sub(r"<RequestId>.*</RequestId>", "", await r.text())
            answers.append((r.status, text))
    assert all(s == 422 and "UntranslatableObject.wrong_root" in t for s, t in answers)
    assert answers[0] == answers[1] == answers[2]  # the same error every time
    assert p.mapping.calls == ["xml_to_json"]  # translated once, remembered since
    assert p.observer.failures[("docs", "xml_to_json", "wrong_root")] == 3
    # A new stored version (a new ETag) is translated afresh.
    fake_s3.put(BUCKET, "docs/bad", xml_doc(a="1"), x_amz_meta_format="xml")
    async with p.request("GET", "docs/bad") as r:
        assert r.status == 200 and json.loads(await r.read()) == {"a": "1"}


async def test_remembered_failures_are_bounded(make_proxy, fake_s3: FakeS3):
    p = await make_proxy(limits={"remembered_failures": 2})
    for i in range(4):
        fake_s3.put(BUCKET, f"docs/bad{i}", b"<other/>", x_amz_meta_format="xml")
        async with p.request("GET", f"docs/bad{i}") as r:
            assert r.status == 422
    assert len(p.handler.ctx.failures) == 2


# --- the global byte budgets ---------------------------------------------------------------


async def test_a_put_past_the_inflight_budget_is_refused_and_nothing_is_stored(
    make_proxy, fake_s3: FakeS3
):
    p = await make_proxy(limits={"max_translate_bytes": 1000, "max_inflight_translate_bytes": 1000})
    body = json_doc(a="x" * 200)
    p.handler.ctx.inflight.used = 900  # other requests' documents
    async with p.request("PUT", "docs/a", data=body) as r:
        assert r.status == 503 and "<Code>SlowDown</Code>" in await r.text()
    assert fake_s3.calls("PUT") == [] and p.mapping.calls == []
    assert p.observer.refusals == {"translate_budget": 1}
    p.handler.ctx.inflight.used = 0
    async with p.request("PUT", "docs/a", data=body) as r:
        assert r.status == 200
    assert p.handler.ctx.inflight.used == 0  # given back


async def test_a_translated_get_past_the_inflight_budget_is_refused(make_proxy, fake_s3):
    fake_s3.put(BUCKET, "docs/a", xml_doc(a="1"), x_amz_meta_format="xml")
    p = await make_proxy(limits={"max_inflight_translate_bytes": 64 * MiB})
    p.handler.ctx.inflight.used = 64 * MiB
    async with p.request("GET", "docs/a") as r:
        assert r.status == 503 and "<Code>SlowDown</Code>" in await r.text()
    assert p.observer.refusals == {"translate_budget": 1}


async def test_upload_part_past_the_spool_budget_is_refused(make_proxy, fake_s3: FakeS3):
    p = await make_proxy(limits={"max_spool_bytes": 6 * MiB})
    upload_id = await create(p)
    status, _, text = await upload_part(p, upload_id, 1, b"a" * (5 * MiB))
    assert status == 200, text
    status, _, text = await upload_part(p, upload_id, 2, b"b" * (5 * MiB))
    assert status == 503 and "<Code>SlowDown</Code>" in text and "max_spool_bytes" in text
    assert p.observer.refusals == {"spool_budget": 1}
    other = await create(p, key="docs/other.json")
    status, _, _ = await upload_part(p, other, 1, b"c" * (2 * MiB), key="docs/other.json")
    assert status == 503  # the budget is global, across uploads
    status, _, text = await upload_part(p, upload_id, 2, b"b" * MiB)
    assert status == 200, text
    assert p.handler.uploads.spooled_bytes() == 6 * MiB
