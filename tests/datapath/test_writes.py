"""PUT and CopyObject on a route, against the fake S3."""

from __future__ import annotations

import hashlib
import json

from tests.datapath.conftest import BUCKET, route
from tests.datapath.fakes import FakeS3, crc32_b64, json_doc, md5_b64, xml_doc


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def puts(fake: FakeS3) -> list:
    return fake.calls("PUT")


async def test_put_translates_to_store_format_with_metadata_and_digests(make_proxy, fake_s3):
    body = json_doc(id="1", name="Ada")
    p = await make_proxy()  # v2 writes json, store: xml
    headers = {
        "Content-Type": "application/json",
        "x-amz-meta-owner": "team-a",
        "x-amz-tagging": "k=v",
        "Cache-Control": "max-age=5",
        "Content-MD5": md5_b64(body),
        "x-amz-checksum-crc32": crc32_b64(body),
        "x-amz-sdk-checksum-algorithm": "CRC32",
        "x-amz-content-sha256": sha256_hex(body),
    }
    async with p.request("PUT", "docs/o", data=body, headers=headers) as r:
        assert r.status == 200, await r.text()
        etag = r.headers["ETag"]
        echoed = r.headers["x-amz-checksum-crc32"]
    stored = fake_s3.objects[BUCKET, "docs/o"]
    assert stored.body == xml_doc(id="1", name="Ada")
    assert etag == stored.etag  # the PUT answers with the stored object's ETag
    assert echoed == crc32_b64(body)  # S3 echoes the client's own checksum
    (q,) = puts(fake_s3)
    h = q.headers
    assert h["content-type"] == "application/xml"
    assert h["x-amz-meta-format"] == "xml"
    assert h["x-amz-meta-owner"] == "team-a" and h["x-amz-tagging"] == "k=v"
    assert h["cache-control"] == "max-age=5"
    assert h["content-md5"] == md5_b64(stored.body)
    assert h["x-amz-checksum-crc32"] == crc32_b64(stored.body)
    assert h["x-amz-content-sha256"] == sha256_hex(stored.body)
    assert h["x-amz-sdk-checksum-algorithm"] == "CRC32"
    assert p.observer.translations == {("docs", "json_to_xml", "put"): 1}
    assert p.observer.outcomes == {("docs", "put", "translated"): 1}


async def test_native_put_is_validated_and_stored_unchanged(make_proxy, fake_s3):
    body = b'{"id": "1"}'
    p = await make_proxy(routes=[route(store="json")])
    async with p.request(
        "PUT", "docs/n", data=body, headers={"Content-Type": "application/json; charset=utf-8"}
    ) as r:
        assert r.status == 200
    stored = fake_s3.objects[BUCKET, "docs/n"]
    assert stored.body == body
    assert stored.headers["content-type"] == "application/json; charset=utf-8"
    assert stored.headers["x-amz-meta-format"] == "json"
    assert p.mapping.calls == ["json_to_xml"]  # validation ran the engine
    assert p.observer.outcomes == {("docs", "put", "native"): 1}
    assert p.observer.work == []  # ...but that is not a translation
    async with p.request("PUT", "docs/n2", data=b'{"id": 1}') as r:
        assert r.status == 400
        assert "InvalidDocument.type_mismatch" in await r.text()
    assert (BUCKET, "docs/n2") not in fake_s3.objects


async def test_as_written_keeps_each_writers_bytes(make_proxy, fake_s3):
    v1 = await make_proxy(app_version="v1", routes=[route(store="as-written")])
    v2 = await make_proxy(app_version="v2", routes=[route(store="as-written")])
    async with v1.request("PUT", "docs/x", data=xml_doc(a="1")) as r:
        assert r.status == 200
    async with v2.request("PUT", "docs/j", data=json_doc(a="2")) as r:
        assert r.status == 200
    assert fake_s3.objects[BUCKET, "docs/x"].body == xml_doc(a="1")
    assert fake_s3.objects[BUCKET, "docs/x"].headers["x-amz-meta-format"] == "xml"
    assert fake_s3.objects[BUCKET, "docs/j"].body == json_doc(a="2")
    assert fake_s3.objects[BUCKET, "docs/j"].headers["x-amz-meta-format"] == "json"
    # each reads the other's object in its own format
    async with v1.request("GET", "docs/j") as r:
        assert await r.read() == xml_doc(a="2")
    async with v2.request("GET", "docs/x") as r:
        assert json.loads(await r.read()) == {"a": "1"}


async def test_invalid_document_is_refused_and_nothing_written(make_proxy, fake_s3):
    p = await make_proxy()
    async with p.request("PUT", "docs/bad", data=b'{"id": 5}') as r:
        assert r.status == 400
        text = await r.text()
    assert "<Code>InvalidDocument.type_mismatch</Code>" in text
    assert "type_mismatch at /id" in text
    async with p.request("PUT", "docs/bad", data=b"<doc/>") as r:  # XML from a JSON writer
        assert r.status == 400
        assert "InvalidDocument.not_well_formed" in await r.text()
    assert puts(fake_s3) == []
    assert p.observer.failures == {
        ("docs", "json_to_xml", "type_mismatch"): 1,
        ("docs", "json_to_xml", "not_well_formed"): 1,
    }
    assert p.observer.outcomes == {("docs", "put", "failed"): 2}


async def test_digest_mismatches_are_refused_and_nothing_written(make_proxy, fake_s3):
    body = json_doc(id="1")
    p = await make_proxy()
    cases = [
        ({"Content-MD5": md5_b64(b"other")}, "BadDigest"),
        ({"Content-MD5": "not-base64!"}, "BadDigest"),
        ({"x-amz-checksum-crc32": crc32_b64(b"other")}, "BadDigest"),
        ({"x-amz-content-sha256": sha256_hex(b"other")}, "XAmzContentSHA256Mismatch"),
    ]
    for headers, code in cases:
        async with p.request("PUT", "docs/d", data=body, headers=headers) as r:
            assert r.status == 400, headers
            assert f"<Code>{code}</Code>" in await r.text()
    assert puts(fake_s3) == []


async def test_too_large_put_is_refused(make_proxy, fake_s3):
    p = await make_proxy(limits={"max_translate_bytes": 100})
    async with p.request("PUT", "docs/big", data=json_doc(a="x" * 200)) as r:
        assert r.status == 400 and "EntityTooLarge" in await r.text()
    assert puts(fake_s3) == []


async def test_upstream_error_on_put_passes_through_and_counts_nothing(make_proxy, fake_s3):
    from aiohttp import web

    async def deny(_request, seen):
        if seen.method == "PUT":
            return web.Response(status=403, body=b"<Error><Code>AccessDenied</Code></Error>")
        return None

    fake_s3.hook = deny
    p = await make_proxy()
    async with p.request("PUT", "docs/o", data=json_doc(a="1")) as r:
        assert r.status == 403 and "AccessDenied" in await r.text()
    assert p.observer.outcomes == {}


async def test_copy_keeps_stored_bytes_and_format(make_proxy, fake_s3):
    stored = xml_doc(a="1")
    fake_s3.put(
        BUCKET,
        "docs/src",
        stored,
        content_type="application/xml",
        x_amz_meta_format="xml",
        x_amz_meta_owner="o",
    )
    p = await make_proxy()
    # COPY directive: plain passthrough, metadata travels with the bytes.
    async with p.request(
        "PUT", "docs/c1", headers={"x-amz-copy-source": f"/{BUCKET}/docs/src"}
    ) as r:
        assert r.status == 200
    # REPLACE: the client's new metadata, plus the source's format.
    async with p.request(
        "PUT",
        "docs/c2",
        headers={
            "x-amz-copy-source": f"{BUCKET}/docs/src",
            "x-amz-metadata-directive": "REPLACE",
            "x-amz-meta-new": "yes",
        },
    ) as r:
        assert r.status == 200, await r.text()
    for key in ("docs/c1", "docs/c2"):
        assert fake_s3.objects[BUCKET, key].body == stored
        assert fake_s3.objects[BUCKET, key].headers["x-amz-meta-format"] == "xml"
    c2 = fake_s3.objects[BUCKET, "docs/c2"].headers
    assert c2["x-amz-meta-new"] == "yes" and "x-amz-meta-owner" not in c2
    assert c2["content-type"] == "application/xml"
    copy_put = next(q for q in puts(fake_s3) if q.path.endswith("/docs/c2"))
    assert (
        copy_put.headers["x-amz-copy-source-if-match"] == fake_s3.objects[BUCKET, "docs/src"].etag
    )
    async with p.request("GET", "docs/c2") as r:
        assert json.loads(await r.read()) == {"a": "1"}
    assert p.observer.translations == {("docs", "xml_to_json", "get"): 1}  # copies count nothing


async def test_copy_replace_of_sniffed_and_undetectable_sources(make_proxy, fake_s3):
    fake_s3.put(BUCKET, "other/sniffed", b"<doc><a>1</a></doc>")
    fake_s3.put(BUCKET, "other/blob", b"\x00\x01binary")
    p = await make_proxy()
    replace = {"x-amz-metadata-directive": "REPLACE"}
    async with p.request(
        "PUT", "docs/s", headers={"x-amz-copy-source": f"/{BUCKET}/other/sniffed", **replace}
    ) as r:
        assert r.status == 200
    assert fake_s3.objects[BUCKET, "docs/s"].headers["x-amz-meta-format"] == "xml"
    async with p.request(
        "PUT", "docs/b", headers={"x-amz-copy-source": f"/{BUCKET}/other/blob", **replace}
    ) as r:
        assert r.status == 400
        assert "InvalidDocument.undetectable_format" in await r.text()
    assert (BUCKET, "docs/b") not in fake_s3.objects
    async with p.request(
        "PUT", "docs/m", headers={"x-amz-copy-source": f"/{BUCKET}/other/missing", **replace}
    ) as r:
        assert r.status == 404 and "NoSuchKey" in await r.text()


async def test_conditional_write_with_the_etag_the_writer_saw(make_proxy, fake_s3):
    fake_s3.put(BUCKET, "docs/c", xml_doc(a="1"), x_amz_meta_format="xml")
    p = await make_proxy()
    async with p.request("GET", "docs/c") as r:
        seen = r.headers["ETag"]  # the JSON representation's ETag
    async with p.request("PUT", "docs/c", data=json_doc(a="2"), headers={"If-Match": seen}) as r:
        assert r.status == 200, await r.text()
    assert fake_s3.calls("PUT")[-1].headers["if-match"] != seen  # the stored ETag went up
    assert fake_s3.objects[BUCKET, "docs/c"].body == xml_doc(a="2")
    # The same ETag again: the object changed since, so the write is refused.
    async with p.request("PUT", "docs/c", data=json_doc(a="3"), headers={"If-Match": seen}) as r:
        assert r.status == 412 and "PreconditionFailed" in await r.text()
    assert fake_s3.objects[BUCKET, "docs/c"].body == xml_doc(a="2")
    async with p.request(
        "PUT", "docs/new", data=json_doc(a="4"), headers={"If-None-Match": "*"}
    ) as r:
        assert r.status == 200
    async with p.request(
        "PUT", "docs/new", data=json_doc(a="5"), headers={"If-None-Match": "*"}
    ) as r:
        assert r.status == 412
    assert fake_s3.objects[BUCKET, "docs/new"].body == xml_doc(a="4")
