"""Multipart uploads on a route, answered by the proxy, against the fake S3."""

from __future__ import annotations

import asyncio
import hashlib
import re
from typing import Any

from tests.datapath.conftest import BUCKET, Proxied
from tests.datapath.fakes import FakeS3, crc32_b64, json_doc, md5_b64, xml_doc

MiB = 1024 * 1024
KEY = "docs/big.json"


def _h(headers: dict[str, str]) -> dict[str, str]:
    return {k.replace("_", "-"): v for k, v in headers.items()}


def tag(xml: str, name: str) -> list[str]:
    return re.findall(rf"<{name}>(.*?)</{name}>", xml, re.S)


async def create(p: Proxied, key: str = KEY, **headers: str) -> str:
    async with p.request("POST", key, params={"uploads": ""}, headers=_h(headers)) as r:
        assert r.status == 200, await r.text()
        text = await r.text()
    assert tag(text, "Bucket") == [BUCKET] and tag(text, "Key") == [key]
    return tag(text, "UploadId")[0]


async def upload_part(
    p: Proxied, upload_id: str, number: int, data: bytes, key: str = KEY, **headers: str
) -> tuple[int, Any, str]:
    async with p.request(
        "PUT",
        key,
        params={"partNumber": str(number), "uploadId": upload_id},
        data=data,
        headers=_h(headers),
    ) as r:
        return r.status, r.headers.copy(), await r.text()


def complete_body(parts: list[tuple[int, str]], checksums: dict[int, str] | None = None) -> str:
    items = []
    for n, etag in parts:
        extra = f"<ChecksumCRC32>{checksums[n]}</ChecksumCRC32>" if checksums else ""
        items.append(f"<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag>{extra}</Part>")
    return (
        '<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        + "".join(items)
        + "</CompleteMultipartUpload>"
    )


async def complete(p: Proxied, upload_id: str, body: str, key: str = KEY) -> tuple[int, str]:
    async with p.request("POST", key, params={"uploadId": upload_id}, data=body.encode()) as r:
        return r.status, await r.text()


def spooled(p: Proxied) -> list:
    return list(p.handler.uploads.root.iterdir())


def big_doc() -> bytes:
    return json_doc(a="x" * (6 * MiB), b="tail")


async def test_parallel_out_of_order_parts_are_assembled_translated_and_stored(
    make_proxy, fake_s3: FakeS3
):
    p = await make_proxy()
    doc = big_doc()
    chunks = [doc[: 5 * MiB], doc[5 * MiB :]]
    upload_id = await create(
        p, x_amz_meta_owner="team-a", x_amz_checksum_algorithm="CRC32", Content_Type="text/plain"
    )
    results = await asyncio.gather(
        *(
            upload_part(
                p, upload_id, n, chunks[n - 1], x_amz_checksum_crc32=crc32_b64(chunks[n - 1])
            )
            for n in (2, 1)
        )
    )
    etags = {}
    for (status, headers, text), n in zip(results, (2, 1), strict=True):
        assert status == 200, text
        assert headers["x-amz-checksum-crc32"] == crc32_b64(chunks[n - 1])
        etags[n] = headers["ETag"]
    async with p.request("GET", KEY, params={"uploadId": upload_id}) as r:
        listing = await r.text()
    assert tag(listing, "PartNumber") == ["1", "2"]
    assert tag(listing, "Size") == [str(5 * MiB), str(len(chunks[1]))]
    assert tag(listing, "ChecksumCRC32") == [crc32_b64(c) for c in chunks]
    assert tag(listing, "ChecksumAlgorithm") == ["CRC32"]
    assert fake_s3.calls("PUT") == []  # nothing upstream before Complete

    status, text = await complete(
        p,
        upload_id,
        complete_body(
            [(1, etags[1]), (2, etags[2])], {1: crc32_b64(chunks[0]), 2: crc32_b64(chunks[1])}
        ),
    )
    assert status == 200, text
    stored = fake_s3.objects[BUCKET, KEY]
    assert stored.body == xml_doc(a="x" * (6 * MiB), b="tail")
    assert tag(text, "ETag") == [stored.etag]
    assert stored.headers["x-amz-meta-owner"] == "team-a"
    assert stored.headers["x-amz-meta-format"] == "xml"
    assert stored.headers["content-type"] == "application/xml"
    assert stored.headers["x-amz-checksum-crc32"] == crc32_b64(stored.body)
    (put,) = fake_s3.calls("PUT")
    assert put.headers["content-md5"] == md5_b64(stored.body)
    assert "uploadId" not in put.query
    assert spooled(p) == []
    assert p.observer.translations == {("docs", "json_to_xml", "put"): 1}
    async with p.request("GET", KEY, params={"uploadId": upload_id}) as r:
        assert r.status == 404 and "NoSuchUpload" in await r.text()


async def test_abort_deletes_the_spool(make_proxy, fake_s3):
    p = await make_proxy()
    upload_id = await create(p)
    status, _, _ = await upload_part(p, upload_id, 1, b"x" * 1000)
    assert status == 200 and len(spooled(p)) == 1
    async with p.request("DELETE", KEY, params={"uploadId": upload_id}) as r:
        assert r.status == 204
    assert spooled(p) == []
    status, _, text = await upload_part(p, upload_id, 2, b"y")
    assert status == 404 and "NoSuchUpload" in text
    async with p.request("DELETE", KEY, params={"uploadId": upload_id}) as r:
        assert r.status == 404
    assert fake_s3.calls("PUT") == []


async def test_part_list_errors_like_s3_keep_the_upload(make_proxy, fake_s3):
    p = await make_proxy()
    upload_id = await create(p, x_amz_checksum_algorithm="CRC32")
    etags = {}
    for n, size in ((1, 1000), (2, 1000)):
        status, headers, _ = await upload_part(p, upload_id, n, b"z" * size)
        etags[n] = headers["ETag"]
    cases = [
        (complete_body([(2, etags[2]), (1, etags[1])]), "InvalidPartOrder"),
        (complete_body([(1, etags[1]), (1, etags[1])]), "InvalidPartOrder"),
        (complete_body([(1, '"0000"')]), "InvalidPart"),
        (complete_body([(1, etags[1]), (3, etags[2])]), "InvalidPart"),
        (complete_body([(1, etags[1])], {1: "AAAAAA=="}), "InvalidPart"),
        (complete_body([(1, etags[1]), (2, etags[2])]), "EntityTooSmall"),
        ("<CompleteMultipartUpload>", "MalformedXML"),
        ("<Other/>", "MalformedXML"),
    ]
    for body, code in cases:
        status, text = await complete(p, upload_id, body)
        assert status == 400 and f"<Code>{code}</Code>" in text, (code, text)
    assert len(spooled(p)) == 1  # still open: the client can fix the list or abort
    assert fake_s3.calls("PUT") == []


async def test_invalid_document_at_complete_ends_the_upload(make_proxy, fake_s3):
    p = await make_proxy()
    upload_id = await create(p)
    status, headers, _ = await upload_part(p, upload_id, 1, b'{"a": 1}')
    status, text = await complete(p, upload_id, complete_body([(1, headers["ETag"])]))
    assert status == 400 and "InvalidDocument.type_mismatch" in text
    assert spooled(p) == [] and fake_s3.calls("PUT") == []
    assert p.observer.failures == {("docs", "json_to_xml", "type_mismatch"): 1}


async def test_single_part_upload_completes(make_proxy, fake_s3):
    p = await make_proxy()
    upload_id = await create(p)
    doc = json_doc(a="1")
    status, headers, _ = await upload_part(p, upload_id, 1, doc)
    status, text = await complete(p, upload_id, complete_body([(1, headers["ETag"])]))
    assert status == 200, text
    assert fake_s3.objects[BUCKET, KEY].body == xml_doc(a="1")


async def test_budget_bad_digests_and_part_numbers(make_proxy, fake_s3):
    p = await make_proxy(limits={"max_translate_bytes": 3000})
    upload_id = await create(p)
    assert (await upload_part(p, upload_id, 1, b"a" * 2000))[0] == 200
    status, _, text = await upload_part(p, upload_id, 2, b"b" * 1500)
    assert status == 400 and "EntityTooLarge" in text and "max_translate_bytes" in text
    # replacing part 1 frees its bytes
    assert (await upload_part(p, upload_id, 1, b"a" * 1000))[0] == 200
    assert (await upload_part(p, upload_id, 2, b"b" * 1500))[0] == 200
    status, _, text = await upload_part(
        p, upload_id, 3, b"c" * 10, x_amz_checksum_crc32=crc32_b64(b"other")
    )
    assert status == 400 and "BadDigest" in text
    status, _, text = await upload_part(p, upload_id, 4, b"c", Content_MD5=md5_b64(b"d"))
    assert status == 400 and "BadDigest" in text
    for bad in ("0", "10001", "x"):
        status, _, text = await upload_part(p, upload_id, bad, b"c")  # type: ignore[arg-type]
        assert status == 400 and "InvalidArgument" in text
    async with p.request("GET", KEY, params={"uploadId": upload_id}) as r:
        assert tag(await r.text(), "PartNumber") == ["1", "2"]
    files = list(next(iter(spooled(p))).iterdir())
    assert len(files) == 2  # replaced and refused parts left nothing behind


async def test_upload_part_copy_takes_the_visible_bytes_of_the_source(make_proxy, fake_s3):
    p = await make_proxy()
    fake_s3.put(BUCKET, "docs/src", xml_doc(a="1", b="22"), x_amz_meta_format="xml")
    visible = json_doc(a="1", b="22")  # what this v2 pod GETs of the stored XML
    upload_id = await create(p)

    async def copy_part(number: int, **headers: str) -> tuple[int, str]:
        async with p.request(
            "PUT",
            KEY,
            params={"partNumber": str(number), "uploadId": upload_id},
            headers={"x-amz-copy-source": f"/{BUCKET}/docs/src", **headers},
        ) as r:
            return r.status, await r.text()

    status, text = await copy_part(1, **{"x-amz-copy-source-range": "bytes=0-4"})
    assert status == 200 and tag(text, "ETag") == [f'"{hashlib.md5(visible[:5]).hexdigest()}"']
    assert tag(text, "LastModified")
    status, text = await copy_part(2, **{"x-amz-copy-source-range": f"bytes=5-{len(visible) - 1}"})
    assert status == 200
    status, text = await copy_part(3, **{"x-amz-copy-source-range": "bytes=5"})
    assert status == 400 and "InvalidArgument" in text
    async with p.request("GET", KEY, params={"uploadId": upload_id}) as r:
        listed = await r.text()
    assert tag(listed, "Size") == ["5", str(len(visible) - 5)]
    assert fake_s3.objects.get((BUCKET, KEY)) is None  # nothing upstream until Complete


async def test_wrong_key_or_unknown_upload_is_no_such_upload(make_proxy, fake_s3):
    p = await make_proxy()
    upload_id = await create(p)
    status, _, text = await upload_part(p, upload_id, 1, b"x", key="docs/other")
    assert status == 404 and "NoSuchUpload" in text
    status, _, text = await upload_part(p, "nope", 1, b"x")
    assert status == 404


async def test_list_parts_pagination(make_proxy, fake_s3):
    p = await make_proxy()
    upload_id = await create(p)
    for n in (1, 2, 3):
        await upload_part(p, upload_id, n, b"p")
    async with p.request("GET", KEY, params={"uploadId": upload_id, "max-parts": "2"}) as r:
        text = await r.text()
    assert tag(text, "PartNumber") == ["1", "2"] and tag(text, "IsTruncated") == ["true"]
    assert tag(text, "NextPartNumberMarker") == ["2"]
    async with p.request(
        "GET", KEY, params={"uploadId": upload_id, "part-number-marker": "2"}
    ) as r:
        text = await r.text()
    assert tag(text, "PartNumber") == ["3"] and tag(text, "IsTruncated") == ["false"]
