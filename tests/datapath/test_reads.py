"""GET and HEAD on a route, against the fake S3 (the upstream requests are asserted too)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import timedelta
from email.utils import format_datetime

from tests.datapath.conftest import BUCKET, route
from tests.datapath.fakes import FakeS3, crc32_b64, json_doc, xml_doc

KEY = "docs/a.xml"


def md5_etag(data: bytes) -> str:
    return '"' + hashlib.md5(data).hexdigest() + '"'


def store_xml(fake: FakeS3, key: str = KEY, **fields: str) -> bytes:
    body = xml_doc(**(fields or {"id": "1", "name": "Ada"}))
    fake.put(
        BUCKET,
        key,
        body,
        content_type="application/xml",
        x_amz_meta_format="xml",
        x_amz_meta_owner="team-a",
    )
    return body


async def test_native_get_streams_stored_bytes_with_one_upstream_request(make_proxy, fake_s3):
    body = json_doc(id="1")
    fake_s3.put(
        BUCKET, "docs/n.json", body, content_type="application/json", x_amz_meta_format="json"
    )
    p = await make_proxy()
    async with p.request("GET", "docs/n.json") as r:
        assert r.status == 200
        assert await r.read() == body
        assert r.headers["ETag"] == md5_etag(body)
    assert [(q.method, q.path) for q in fake_s3.requests] == [("GET", f"/{BUCKET}/docs/n.json")]
    assert p.observer.outcomes == {("docs", "get", "native"): 1}
    assert p.mapping.calls == []


async def test_translated_get_headers_body_and_counts(make_proxy, fake_s3):
    stored = store_xml(fake_s3)
    p = await make_proxy()
    async with p.request("GET", KEY) as r:
        assert r.status == 200
        body = await r.read()
    assert json.loads(body) == {"id": "1", "name": "Ada"}
    assert r.headers["Content-Type"] == "application/json"
    assert int(r.headers["Content-Length"]) == len(body)
    assert r.headers["ETag"] == md5_etag(body) != md5_etag(stored)
    assert r.headers["x-amz-meta-owner"] == "team-a"
    assert r.headers["x-amz-meta-format"] == "xml"  # metadata unchanged: the stored format
    assert "Last-Modified" in r.headers
    assert [q.method for q in fake_s3.requests] == ["GET"]
    assert p.observer.translations == {("docs", "xml_to_json", "get"): 1}
    assert p.observer.outcomes == {("docs", "get", "translated"): 1}
    assert [w[0] for w in p.observer.work] == ["xml_to_json"]
    assert (p.observer.hits, p.observer.misses) == (0, 1)


async def test_cached_get_costs_a_head_and_no_translation(make_proxy, fake_s3):
    store_xml(fake_s3)
    p = await make_proxy()
    async with p.request("GET", KEY) as r:
        first = await r.read()
    async with p.request("GET", KEY) as r:
        assert r.status == 200
        assert await r.read() == first
    assert [q.method for q in fake_s3.requests] == ["GET", "HEAD"]
    assert p.mapping.calls == ["xml_to_json"]
    assert p.observer.translations == {("docs", "xml_to_json", "get"): 2}  # hits count
    assert (p.observer.hits, p.observer.misses) == (1, 1)
    assert len(p.observer.work) == 1


async def test_changed_object_gets_new_translation_and_etag(make_proxy, fake_s3):
    store_xml(fake_s3, id="1")
    p = await make_proxy()
    async with p.request("GET", KEY) as r:
        etag1 = r.headers["ETag"]
        assert json.loads(await r.read())["id"] == "1"
    store_xml(fake_s3, id="2")
    async with p.request("GET", KEY) as r:
        assert json.loads(await r.read())["id"] == "2"
        assert r.headers["ETag"] != etag1
    assert len(p.handler.cache) == 1  # the stale translation was dropped


async def test_format_from_content_type_and_from_sniff(make_proxy, fake_s3):
    fake_s3.put(BUCKET, "docs/ct", xml_doc(a="1"), content_type="text/xml; charset=utf-8")
    fake_s3.put(
        BUCKET, "docs/sniff", b"  \n<doc><a>2</a></doc>", content_type="binary/octet-stream"
    )
    fake_s3.put(BUCKET, "docs/native-sniff", b'\n {"a":"3"}', content_type="binary/octet-stream")
    p = await make_proxy()
    for key, want in (("docs/ct", {"a": "1"}), ("docs/sniff", {"a": "2"})):
        async with p.request("GET", key) as r:
            assert r.status == 200, await r.text()
            assert json.loads(await r.read()) == want
    async with p.request("GET", "docs/native-sniff") as r:
        assert await r.read() == b'\n {"a":"3"}'  # sniffed bytes are not lost
    # HEAD-first path: the headers name no format, so the proxy sniffs with a ranged GET.
    async with p.request("HEAD", "docs/sniff") as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/json"


async def test_head_reports_translated_length_type_etag_then_get_hits_cache(make_proxy, fake_s3):
    store_xml(fake_s3)
    p = await make_proxy()
    async with p.request("HEAD", KEY) as r:
        assert r.status == 200
        head = r.headers
    async with p.request("GET", KEY) as r:
        body = await r.read()
    assert int(head["Content-Length"]) == len(body)
    assert head["ETag"] == r.headers["ETag"] == md5_etag(body)
    assert head["Content-Type"] == "application/json"
    assert head["x-amz-meta-owner"] == "team-a"
    assert [q.method for q in fake_s3.requests] == ["HEAD", "GET", "HEAD"]
    assert fake_s3.requests[1].headers["if-match"] == fake_s3.objects[BUCKET, KEY].etag
    assert p.observer.translations == {
        ("docs", "xml_to_json", "head"): 1,
        ("docs", "xml_to_json", "get"): 1,
    }
    assert p.mapping.calls == ["xml_to_json"]


async def test_ranges_apply_to_translated_bytes(make_proxy, fake_s3):
    store_xml(fake_s3)
    p = await make_proxy()
    async with p.request("GET", KEY) as r:
        full = await r.read()
    n = len(full)
    cases = {
        "bytes=2-5": (2, 5),
        "bytes=-4": (n - 4, n - 1),
        f"bytes={n - 3}-": (n - 3, n - 1),
        "bytes=0-8388607": (0, n - 1),  # download_file in when_required mode
    }
    for header, (start, end) in cases.items():
        async with p.request("GET", KEY, headers={"Range": header}) as r:
            assert r.status == 206, header
            assert await r.read() == full[start : end + 1]
            assert r.headers["Content-Range"] == f"bytes {start}-{end}/{n}"
            assert r.headers["ETag"] == md5_etag(full)
    async with p.request("GET", KEY, headers={"Range": f"bytes={n}-"}) as r:
        assert r.status == 416
        assert "<Code>InvalidRange</Code>" in await r.text()
    async with p.request("HEAD", KEY, headers={"Range": "bytes=0-9"}) as r:
        assert r.status == 206 and r.headers["Content-Length"] == "10"
    # The upstream never saw a Range (it would apply to the stored bytes).
    assert all("range" not in q.headers for q in fake_s3.requests)


async def test_part_number(make_proxy, fake_s3):
    store_xml(fake_s3)
    p = await make_proxy()
    async with p.request("GET", KEY, params={"partNumber": "1"}) as r:
        assert r.status == 206
        body = await r.read()
        assert r.headers["Content-Range"] == f"bytes 0-{len(body) - 1}/{len(body)}"
    async with p.request("GET", KEY, params={"partNumber": "2"}) as r:
        assert r.status == 416 and "InvalidPartNumber" in await r.text()
    async with p.request(
        "GET", KEY, params={"partNumber": "1"}, headers={"Range": "bytes=0-1"}
    ) as r:
        assert r.status == 400
    assert all("partNumber" not in q.query for q in fake_s3.requests)


async def test_conditionals_use_translated_etag(make_proxy, fake_s3):
    stored = store_xml(fake_s3)
    p = await make_proxy()
    async with p.request("HEAD", KEY) as r:
        etag = r.headers["ETag"]
    lm = fake_s3.objects[BUCKET, KEY].last_modified
    later = format_datetime(lm + timedelta(hours=1), usegmt=True)
    earlier = format_datetime(lm - timedelta(hours=1), usegmt=True)
    expect = [
        ({"If-None-Match": etag}, 304),
        ({"If-None-Match": md5_etag(stored)}, 200),
        ({"If-Match": etag}, 200),
        ({"If-Match": md5_etag(stored)}, 412),  # the stored ETag is not what this client sees
        ({"If-Modified-Since": later}, 304),
        ({"If-Modified-Since": earlier}, 200),
        ({"If-Unmodified-Since": earlier}, 412),
        ({"If-Match": etag, "If-Unmodified-Since": earlier}, 200),  # If-Match wins (RFC 9110)
    ]
    for method in ("GET", "HEAD"):
        for headers, status in expect:
            async with p.request(method, KEY, headers=headers) as r:
                assert r.status == status, (method, headers)
                if status == 304:
                    assert r.headers["ETag"] == etag
                    assert await r.read() == b""
    for q in fake_s3.requests:
        if q.method == "HEAD":
            assert not {"if-match", "if-none-match", "if-modified-since"} & set(q.headers)


async def test_native_object_with_range_and_conditions_goes_upstream_unchanged(make_proxy, fake_s3):
    body = json_doc(id="1", text="abcdefghij")
    fake_s3.put(BUCKET, "docs/n.json", body, x_amz_meta_format="json")
    p = await make_proxy()
    async with p.request("GET", "docs/n.json", headers={"Range": "bytes=0-3"}) as r:
        assert r.status == 206 and await r.read() == body[:4]
    stored_etag = fake_s3.objects[BUCKET, "docs/n.json"].etag
    async with p.request("GET", "docs/n.json", headers={"If-None-Match": stored_etag}) as r:
        assert r.status == 304
    assert [q.method for q in fake_s3.requests] == ["HEAD", "GET", "HEAD", "GET"]
    assert fake_s3.requests[1].headers["range"] == "bytes=0-3"
    assert p.observer.outcomes == {("docs", "get", "native"): 2}


async def test_on_error_fail_is_422_with_reason_and_location(make_proxy, fake_s3):
    fake_s3.put(BUCKET, "docs/bad", b"<doc><a><b>x</b></a></doc>", x_amz_meta_format="xml")
    p = await make_proxy()
    async with p.request("GET", "docs/bad") as r:
        assert r.status == 422
        text = await r.text()
    assert "<Code>UntranslatableObject.unknown_element</Code>" in text
    assert "unknown_element at /doc/a/b" in text
    async with p.request("HEAD", "docs/bad") as r:
        assert r.status == 422
    assert p.observer.failures == {("docs", "xml_to_json", "unknown_element"): 2}
    assert p.observer.outcomes == {("docs", "get", "failed"): 1, ("docs", "head", "failed"): 1}
    assert p.observer.translations == {}


async def test_on_error_passthrough_serves_stored_bytes(make_proxy, fake_s3):
    bad = b"<doc><a><b>x</b></a></doc>"
    fake_s3.put(BUCKET, "docs/bad", bad, x_amz_meta_format="xml", x_amz_meta_owner="o")
    p = await make_proxy(routes=[route(on_error="passthrough")])
    async with p.request("GET", "docs/bad") as r:
        assert r.status == 200 and await r.read() == bad
        assert r.headers["ETag"] == md5_etag(bad)
        assert r.headers["x-amz-meta-owner"] == "o"
    async with p.request("GET", "docs/bad", headers={"Range": "bytes=1-3"}) as r:
        assert r.status == 206 and await r.read() == bad[1:4]
    async with p.request("HEAD", "docs/bad") as r:
        assert r.status == 200 and r.headers["Content-Length"] == str(len(bad))
    assert p.observer.failures == {("docs", "xml_to_json", "unknown_element"): 3}


async def test_too_large_follows_on_error(make_proxy, fake_s3):
    big = xml_doc(a="x" * 5000)
    fake_s3.put(BUCKET, "docs/big", big, x_amz_meta_format="xml")
    p = await make_proxy(limits={"max_translate_bytes": 1000})
    async with p.request("GET", "docs/big") as r:
        assert r.status == 422
        text = await r.text()
        assert "UntranslatableObject.too_large" in text and "max_translate_bytes" in text
    q = await make_proxy(
        limits={"max_translate_bytes": 1000}, routes=[route(on_error="passthrough")]
    )
    async with q.request("GET", "docs/big") as r:
        assert r.status == 200 and await r.read() == big
    assert p.mapping.calls == [] and q.mapping.calls == []


async def test_undetectable_format(make_proxy, fake_s3):
    fake_s3.put(BUCKET, "docs/blob", b"hello", content_type="application/octet-stream")
    p = await make_proxy()
    async with p.request("GET", "docs/blob") as r:
        assert r.status == 422
        text = await r.text()
        assert "UntranslatableObject.undetectable_format" in text
        # it says the format is unknown and what was looked at, not "from xml to ..."
        assert "format is unknown" in text and "translated from" not in text
        assert "application/octet-stream" in text and "b'hello'" in text
    fake_s3.put(BUCKET, "docs/weird", b"{}", x_amz_meta_format="yaml")
    async with p.request("GET", "docs/weird") as r:
        assert r.status == 422 and "x-amz-meta-format" in await r.text()


async def test_checksum_mode_gets_crc32_of_translated_bytes(make_proxy, fake_s3):
    stored = store_xml(fake_s3)
    fake_s3.objects[BUCKET, KEY].headers["x-amz-checksum-crc32"] = crc32_b64(stored)
    p = await make_proxy()
    for path in ("direct", "cached"):
        async with p.request("GET", KEY, headers={"x-amz-checksum-mode": "ENABLED"}) as r:
            body = await r.read()
            assert r.headers["x-amz-checksum-crc32"] == crc32_b64(body), path
    async with p.request("GET", KEY) as r:
        assert "x-amz-checksum-crc32" not in r.headers
    async with p.request(
        "GET", KEY, headers={"x-amz-checksum-mode": "ENABLED", "Range": "bytes=0-3"}
    ) as r:
        assert not [h for h in r.headers if h.lower().startswith("x-amz-checksum-")]


async def test_missing_object_errors_pass_through(make_proxy, fake_s3):
    p = await make_proxy()
    async with p.request("GET", "docs/missing") as r:
        assert r.status == 404 and "NoSuchKey" in await r.text()
    async with p.request("GET", "docs/missing", headers={"Range": "bytes=0-1"}) as r:
        assert r.status == 404 and "NoSuchKey" in await r.text()
    async with p.request("HEAD", "docs/missing") as r:
        assert r.status == 404
    assert p.observer.outcomes == {}


async def test_object_replaced_between_probe_and_read_is_retried(make_proxy, fake_s3):
    store_xml(fake_s3, id="old")
    p = await make_proxy()
    replaced = False

    async def hook(_request, seen):
        nonlocal replaced
        if seen.method == "GET" and "if-match" in seen.headers and not replaced:
            replaced = True
            store_xml(fake_s3, id="new")
        return None

    fake_s3.hook = hook
    async with p.request("HEAD", KEY) as r:
        assert r.status == 200
    async with p.request("GET", KEY, headers={"Range": "bytes=0-"}) as r:
        assert json.loads(await r.read())["id"] == "new"
    assert [q.method for q in fake_s3.requests].count("HEAD") >= 2


async def test_keys_ending_in_slash_pass_through(make_proxy, fake_s3):
    fake_s3.put(BUCKET, "docs/folder/", b"")
    p = await make_proxy()
    async with p.request("GET", "docs/folder/") as r:
        assert r.status == 200 and await r.read() == b""
    async with p.request("PUT", "docs/other/", data=b"") as r:
        assert r.status == 200
    assert fake_s3.objects[BUCKET, "docs/other/"].body == b""
    assert p.observer.outcomes == {}


async def test_response_content_type_override_is_honoured(make_proxy, fake_s3):
    store_xml(fake_s3)
    p = await make_proxy()
    async with p.request("GET", KEY, params={"response-content-type": "text/plain"}) as r:
        assert r.headers["Content-Type"] == "text/plain"
        assert json.loads(await r.read())["id"] == "1"


async def test_concurrent_gets_translate_once(make_proxy, fake_s3):
    store_xml(fake_s3)
    p = await make_proxy()

    async def get() -> bytes:
        async with p.request("GET", KEY, headers={"Range": "bytes=0-"}) as r:
            return await r.read()

    bodies = await asyncio.gather(*(get() for _ in range(8)))
    assert len(set(bodies)) == 1
    assert p.mapping.calls == ["xml_to_json"]
    assert p.observer.translations == {("docs", "xml_to_json", "get"): 8}


async def test_v1_reader_gets_json_objects_as_xml(make_proxy, fake_s3):
    fake_s3.put(
        BUCKET,
        "docs/j",
        json_doc(id="7"),
        content_type="application/json",
        x_amz_meta_format="json",
    )
    p = await make_proxy(app_version="v1")
    async with p.request("GET", "docs/j") as r:
        assert r.headers["Content-Type"] == "application/xml"
        assert await r.read() == xml_doc(id="7")
    assert p.observer.translations == {("docs", "json_to_xml", "get"): 1}


async def test_outside_routes_nothing_changes(make_proxy, fake_s3):
    fake_s3.put(BUCKET, "elsewhere/a.xml", xml_doc(a="1"), x_amz_meta_format="xml")
    p = await make_proxy()
    async with p.request("GET", "elsewhere/a.xml") as r:
        assert await r.read() == xml_doc(a="1")
    assert p.observer.outcomes == {}


async def test_sniffed_large_object_is_read_whole_after_the_peek(make_proxy, fake_s3):
    body = b" " * 60_000 + b"<doc><a>" + b"x" * 3_000_000 + b"</a></doc>"
    fake_s3.put(BUCKET, "docs/big-sniff", body, content_type="binary/octet-stream")
    native = b"\n" * 60_000 + b'{"a":"' + b"y" * 3_000_000 + b'"}'
    fake_s3.put(BUCKET, "docs/big-native", native, content_type="binary/octet-stream")
    blank = b" " * 70_000 + b"<doc/>"  # beyond the 64 KiB sniff window: not guessed
    fake_s3.put(BUCKET, "docs/blank", blank, content_type="binary/octet-stream")
    p = await make_proxy()
    async with p.request("GET", "docs/big-sniff") as r:
        assert r.status == 200
        assert json.loads(await r.read()) == {"a": "x" * 3_000_000}
    async with p.request("GET", "docs/big-native") as r:
        assert await r.read() == native
    async with p.request("GET", "docs/blank") as r:
        assert r.status == 422 and "undetectable_format" in await r.text()
