"""Shadow mode in process: what is copied and counted, and how the bounds shed work.

The end-to-end proof (real backends, real proxy processes, boto3) is tests/e2e/test_shadow.py;
here the fake S3 and a fake mapping make every skip reason and the round-trip verdict exact.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import pytest

from proxy.datapath.documents import shadow_verdict
from proxy.datapath.shadowqueue import ShadowChecker
from proxy.errors import TranslationError
from proxy.translate.roundtrip import canonical_xml, difference_location
from tests.datapath.conftest import BUCKET, Proxied, route
from tests.datapath.fakes import FakeS3, json_doc, xml_doc
from tests.support.inprocess import spy_on_lean_path


@pytest.fixture(params=[True, False], ids=["lean", "general"])
def make_proxy(request: pytest.FixtureRequest, make_proxy: Any) -> Any:
    """Every test on both front ends: the lean path serves small requests on shadow routes as
    it serves unrouted ones; the general path serves the rest (and everything when off)."""

    async def start(**config: Any) -> Proxied:
        config.setdefault("server", {"fast_path": request.param})
        return await make_proxy(**config)

    return start


@pytest.fixture
def lean_served(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Methods of the requests the lean path served."""
    return spy_on_lean_path(monkeypatch)


def _shadow(**shadow: Any) -> list[dict[str, Any]]:
    return [route(mode="shadow", shadow={"sample": 1.0, **shadow})]


async def _settle(checker: ShadowChecker, observer: Any, total: int) -> Counter[tuple[str, ...]]:
    for _ in range(500):
        if sum(observer.shadow.values()) >= total and checker.buffered == 0:
            break
        await asyncio.sleep(0.01)
    return Counter({k[1:]: v for k, v in observer.shadow.items()})


async def test_shadow_get_and_put_pass_through_and_are_checked(
    make_proxy: Any, fake_s3: FakeS3, lean_served: list[str]
) -> None:
    p: Proxied = await make_proxy(app_version="v2", routes=_shadow())
    lean = p.service.config.server.fast_path
    stored = xml_doc(a="1", b="two")
    fake_s3.put(BUCKET, "docs/x", stored, content_type="application/xml")
    async with p.request("GET", "docs/x") as r:
        assert r.status == 200 and await r.read() == stored
        assert r.headers["Content-Type"] == "application/xml"
    sent = json_doc(a="1")
    async with p.request("PUT", "docs/y", data=sent) as r:
        assert r.status == 200
    assert fake_s3.objects[BUCKET, "docs/y"].body == sent  # stored as sent, not translated
    got = await _settle(p.handler.shadow, p.observer, 2)
    assert got == {("xml_to_json", "ok", ""): 1, ("json_to_xml", "ok", ""): 1}
    assert p.observer.translations == Counter()  # nothing was translated for a client
    assert lean_served == (["GET", "PUT"] if lean else [])


async def test_a_failed_check_is_counted_with_its_reason(make_proxy: Any, fake_s3: FakeS3) -> None:
    p: Proxied = await make_proxy(app_version="v2", routes=_shadow())
    nested = b"<doc><a><b>1</b></a></doc>"
    fake_s3.put(BUCKET, "docs/nested", nested)
    fake_s3.put(BUCKET, "docs/neither", b"hello")
    for key, body in (("docs/nested", nested), ("docs/neither", b"hello")):
        async with p.request("GET", key) as r:
            assert r.status == 200 and await r.read() == body
    got = await _settle(p.handler.shadow, p.observer, 2)
    assert got == {
        ("xml_to_json", "failed", "unknown_element"): 1,
        ("unknown", "failed", "undetectable_format"): 1,
    }


async def test_skips_have_their_reason(make_proxy: Any, fake_s3: FakeS3) -> None:
    p: Proxied = await make_proxy(
        app_version="v1",
        routes=[
            route(mode="shadow", shadow={"sample": 1.0, "max_bytes": 40}),
            route(name="quiet", prefix="quiet/", mode="shadow", shadow={"sample": 0.0}),
        ],
    )
    small, large = xml_doc(a="1"), xml_doc(a="x" * 100)
    fake_s3.put(BUCKET, "docs/small", small, content_type="application/xml")
    fake_s3.put(BUCKET, "docs/large", large, content_type="application/xml")
    fake_s3.put(BUCKET, "quiet/k", small, content_type="application/json")
    async with p.request("GET", "docs/large") as r:
        assert await r.read() == large
    async with p.request("GET", "docs/small", headers={"Range": "bytes=0-9"}) as r:
        assert r.status == 206 and await r.read() == small[:10]
    async with p.request("GET", "quiet/k") as r:
        assert await r.read() == small
    async with p.request("GET", "docs/missing") as r:
        assert r.status == 404  # no object: no outcome at all
    async with p.request("HEAD", "docs/small") as r:
        assert r.status == 200  # not a GET: no outcome
    got = await _settle(p.handler.shadow, p.observer, 3)
    assert got == {
        ("xml_to_json", "skipped", "too_large"): 1,
        ("xml_to_json", "skipped", "partial"): 1,
        # the label names the format the headers claim, even for a body never looked at
        ("json_to_xml", "skipped", "not_sampled"): 1,
    }


async def test_saturation_sheds_work_and_requests_never_wait(
    make_proxy: Any, fake_s3: FakeS3
) -> None:
    """One checker held up and a byte budget of three documents: further bodies are dropped
    and counted (``buffer_full``), and every request answers while the checks wait."""
    body = xml_doc(a="x" * 200)
    p: Proxied = await make_proxy(
        app_version="v1",
        routes=_shadow(max_bytes=len(body)),
        shadow={"queue": 64, "concurrency": 1, "max_buffered_bytes": 3 * len(body) + 10},
    )
    fake_s3.put(BUCKET, "docs/x", body, content_type="application/xml")
    checker = p.handler.shadow
    release = asyncio.Event()
    real = p.handler.worker.shadow_check

    async def held(*args: Any) -> Any:
        await release.wait()
        return await real(*args)

    p.handler.worker.shadow_check = held  # type: ignore[method-assign]
    for _ in range(6):
        async with asyncio.timeout(2):
            async with p.request("GET", "docs/x") as r:
                assert await r.read() == body
    assert checker.buffered == 3 * len(body)  # one being checked, two queued
    release.set()
    got = await _settle(checker, p.observer, 6)
    # A copy reserves its bytes when it starts, and holds them until its check is done.
    assert got == {
        ("xml_to_json", "ok", ""): 3,
        ("xml_to_json", "skipped", "buffer_full"): 3,
    }


async def test_queue_full_is_counted(make_proxy: Any, fake_s3: FakeS3) -> None:
    body = xml_doc(a="1")
    p: Proxied = await make_proxy(
        app_version="v1", routes=_shadow(), shadow={"queue": 1, "concurrency": 1}
    )
    fake_s3.put(BUCKET, "docs/x", body)
    release = asyncio.Event()
    real = p.handler.worker.shadow_check

    async def held(*args: Any) -> Any:
        await release.wait()
        return await real(*args)

    p.handler.worker.shadow_check = held  # type: ignore[method-assign]
    for _ in range(5):
        async with p.request("GET", "docs/x") as r:
            assert await r.read() == body
    release.set()
    got = await _settle(p.handler.shadow, p.observer, 5)
    # Dropped before a copy: the headers name no format, so the direction is unknown.
    assert got == {("xml_to_json", "ok", ""): 2, ("unknown", "skipped", "queue_full"): 3}


async def test_a_get_the_client_abandons_is_incomplete(make_proxy: Any, fake_s3: FakeS3) -> None:
    big = xml_doc(a="x" * (8 * 1024 * 1024))
    p: Proxied = await make_proxy(app_version="v1", routes=_shadow(max_bytes="12MiB"))
    fake_s3.put(BUCKET, "docs/big", big)
    async with p.request("GET", "docs/big") as r:
        assert await r.content.read(10) == big[:10]
        r.close()  # the client goes away with most of the body unread
    got = await _settle(p.handler.shadow, p.observer, 1)
    assert got == {("xml_to_json", "skipped", "incomplete"): 1}


async def test_a_failed_put_has_no_outcome(make_proxy: Any, fake_s3: FakeS3) -> None:
    p: Proxied = await make_proxy(app_version="v1", routes=_shadow())
    body = xml_doc(a="1")
    async with p.request("PUT", "docs/x", data=body) as r:
        assert r.status == 200
    async with p.request("PUT", "docs/x", data=body, headers={"If-None-Match": "*"}) as r:
        assert r.status == 412  # the upstream refused it
    got = await _settle(p.handler.shadow, p.observer, 1)
    assert got == {("xml_to_json", "ok", ""): 1}
    assert p.handler.shadow.buffered == 0


async def test_close_counts_what_is_still_queued(make_proxy: Any, fake_s3: FakeS3) -> None:
    body = xml_doc(a="1")
    p: Proxied = await make_proxy(app_version="v1", routes=_shadow())
    fake_s3.put(BUCKET, "docs/x", body)
    never = asyncio.Event()

    async def stuck(*args: Any) -> Any:
        await never.wait()

    p.handler.worker.shadow_check = stuck  # type: ignore[method-assign]
    for _ in range(3):
        async with p.request("GET", "docs/x") as r:
            await r.read()
    await asyncio.sleep(0.05)
    p.handler.shadow.close()
    got = await _settle(p.handler.shadow, p.observer, 3)
    assert got == {("xml_to_json", "skipped", "shutdown"): 3}
    assert p.handler.shadow.buffered == 0


class _Lossy:
    """A mapping that loses an attribute and says so in its JSON."""

    def xml_to_json(self, data: bytes) -> bytes:
        return json.dumps({"size": len(data)}).encode()

    def json_to_xml(self, data: bytes) -> bytes:
        return b'<doc><item n="1"/><item/></doc>'


def test_a_document_that_does_not_come_back_fails_with_its_location() -> None:
    verdict = shadow_verdict(_Lossy(), b'<doc><item n="1"/><item n="2"/></doc>', "xml")  # type: ignore[arg-type]
    assert verdict.reason == "round_trip_mismatch"
    assert verdict.location == "/doc/item[2]/@n"
    assert "n=" not in verdict.detail  # no quote of the document


def test_difference_location_points_at_the_first_difference() -> None:
    a = canonical_xml(b"<r><a>1</a><b><c>2</c></b></r>")
    assert (
        difference_location(a, canonical_xml(b"<r><a>1</a><b><c>3</c></b></r>")) == "/r/b[1]/c[1]"
    )
    assert difference_location(a, canonical_xml(b"<r><a>1</a><b/></r>")) == "/r/b[1]"
    assert difference_location(a, canonical_xml(b"<s/>")) == "/"


def test_an_engine_failure_keeps_its_reason_and_location() -> None:
    class Refuses:
        def xml_to_json(self, data: bytes) -> bytes:
            raise TranslationError("type_mismatch", "/doc/n", "not a number")

        json_to_xml = xml_to_json

    verdict = shadow_verdict(Refuses(), b"<doc/>", "xml")  # type: ignore[arg-type]
    assert (verdict.reason, verdict.location, verdict.ok) == ("type_mismatch", "/doc/n", False)


@pytest.mark.parametrize("sample", [0.0, 0.5, 1.0])
def test_sampling_draws_per_body(sample: float) -> None:
    import random

    from proxy.config import RouteConfig, ShadowConfig
    from proxy.datapath.observe import RecordingObserver
    from proxy.datapath.routes import CompiledRoute

    config = RouteConfig.model_validate(route(mode="shadow", shadow={"sample": sample}))
    compiled = CompiledRoute(config, None)  # type: ignore[arg-type]
    checker = ShadowChecker(
        ShadowConfig(), None, RecordingObserver(), max_translate_bytes=1000, rng=random.Random(7)
    )  # type: ignore[arg-type]
    tees = [checker.tee(compiled, "get", "k", 10) for _ in range(1000)]
    copied = sum(not t.settled for t in tees)
    assert {0.0: copied == 0, 0.5: 400 < copied < 600, 1.0: copied == 1000}[sample]
    assert all(t.skip == "not_sampled" for t in tees if t.settled)
    assert checker.buffered == 10 * copied
