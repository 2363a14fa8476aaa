"""``format-proxy migrate`` on real backends: what it rewrites, what it keeps, what it refuses.

Every object is read back straight from the backend: the body must be the JSON form of the
document that was stored, and everything else a reader could see must be as before.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from tests.datapath.orders import big_order, same_xml
from tests.support.backends import Backend
from tests.transition.conftest import (
    UNTRANSLATABLE,
    json_bytes,
    order,
    put_json,
    put_xml,
    run_cli,
    stored,
    xml_bytes,
)

MiB = 1024 * 1024
# Spaces, '+', unicode, '//' (SeaweedFS folds '//' to '/': the tests use the keys it lists).
AWKWARD = ["orders/with space.xml", "orders/plus+sign.xml", "orders/ünïcødé/ß €.xml", "orders//x"]
EXPIRES = dt.datetime(2031, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
TAGS = {"TagSet": [{"Key": "team", "Value": "shop floor"}, {"Key": "k+1", "Value": "é"}]}


def _full_headers(i: int) -> dict[str, Any]:
    return {
        "Metadata": {"owner": f"writer-{i}", "trace": "a b+c"},
        "CacheControl": "max-age=60",
        "ContentDisposition": f'attachment; filename="order-{i}.xml"',
        "ContentLanguage": "de-CH",
        "ContentEncoding": "identity",
        "Expires": EXPIRES,
        "StorageClass": "STANDARD_IA",
    }


def _assert_kept(backend: Backend, bucket: str, key: str, i: int, head: dict[str, Any]) -> None:
    assert head["ContentType"] == "application/json"
    assert head["Metadata"] == {"owner": f"writer-{i}", "trace": "a b+c", "format": "json"}
    assert head["CacheControl"] == "max-age=60"
    assert head["ContentDisposition"] == f'attachment; filename="order-{i}.xml"'
    assert head["ContentLanguage"] == "de-CH"
    assert head["ContentEncoding"] == "identity"
    assert head["Expires"] == EXPIRES
    assert head["StorageClass"] == "STANDARD_IA"
    tags = backend.direct.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
    assert sorted(tags, key=lambda t: t["Key"]) == sorted(TAGS["TagSet"], key=lambda t: t["Key"])


def test_migrate_rewrites_keeps_everything_and_reports_untranslatable(
    backend: Backend, bucket: str, config_for: Any
):
    docs: dict[str, dict[str, Any]] = {}
    for i, key in enumerate(AWKWARD):
        docs[key] = order(i)
        put_xml(backend, bucket, key, docs[key], **_full_headers(i))
        backend.direct.put_object_tagging(Bucket=bucket, Key=key, Tagging=TAGS)
    # Detected without the proxy's label: by Content-Type, and by the first byte alone.
    docs["orders/by-type.xml"] = order(10)
    backend.direct.put_object(
        Bucket=bucket, Key="orders/by-type.xml", Body=xml_bytes(order(10)), ContentType="text/xml"
    )
    docs["orders/sniffed"] = order(11)
    backend.direct.put_object(Bucket=bucket, Key="orders/sniffed", Body=xml_bytes(order(11)))
    already = put_json(backend, bucket, "orders/already.json", order(12))
    broken = backend.direct.put_object(
        Bucket=bucket, Key="orders/broken.xml", Body=UNTRANSLATABLE, ContentType="application/xml"
    )["ETag"]
    outside = put_xml(backend, bucket, "other/not-on-route.xml", order(13))
    keys = {k for k in backend.keys(bucket) if k.startswith("orders/")}
    docs = {k if k in keys else k.replace("//", "/"): d for k, d in docs.items()}
    config = config_for(bucket)

    def etags() -> dict[str, str]:
        return {k: backend.direct.head_object(Bucket=bucket, Key=k)["ETag"] for k in keys}

    before = etags()
    dry = run_cli(backend, ["migrate", "--config", str(config), "--route", "orders", "--to",
                            "json", "--dry-run"])  # fmt: skip
    assert dry.summary["rewritten"] == len(docs) and dry.summary["dry_run"] is True
    assert etags() == before  # nothing written
    for key in docs:
        assert stored(backend, bucket, key)[0]["Metadata"].get("format") != "json"

    run = run_cli(backend, ["migrate", "--config", str(config), "--route", "orders", "--to",
                            "json", "--concurrency", "3"])  # fmt: skip
    assert run.code == 1, run.stderr  # the untranslatable object
    assert run.summary | {"bytes": 0} == {
        "rewritten": len(docs), "skipped": 1, "conflict": 0, "failed": 1, "bytes": 0,
        "dry_run": False, "interrupted": False,
    }  # fmt: skip
    assert run.summary["bytes"] > 0
    [problem] = run.problems
    assert problem["key"] == "orders/broken.xml"
    assert problem["reason"] and problem["location"].startswith("/")
    assert problem["stored_format"] == "xml"

    for key, doc in docs.items():
        head, body = stored(backend, bucket, key)
        assert json.loads(body) == doc, key
        assert head["ContentType"] == "application/json"
        assert head["Metadata"]["format"] == "json"
        if key.removeprefix("orders/") in ("with space.xml", "plus+sign.xml", "ünïcødé/ß €.xml"):
            _assert_kept(backend, bucket, key, AWKWARD.index(key), head)
    assert stored(backend, bucket, "orders/already.json")[0]["ETag"] == already
    assert stored(backend, bucket, "orders/broken.xml")[0]["ETag"] == broken
    assert stored(backend, bucket, "other/not-on-route.xml")[0]["ETag"] == outside

    again = run_cli(backend, ["migrate", "--config", str(config), "--route", "orders", "--to",
                              "json"])  # fmt: skip
    assert again.summary["rewritten"] == 0
    assert again.summary["skipped"] == len(docs) + 1 and again.summary["failed"] == 1


def test_large_objects_go_multipart_and_versions_stay(backend: Backend, config_for: Any):
    bucket = backend.new_bucket(versioned=True)
    big = big_order(1, 8 * MiB)
    put_xml(backend, bucket, "orders/big.xml", big, Metadata={"size": "big"})
    put_xml(backend, bucket, "orders/small.xml", order(2))
    config = config_for(bucket)
    run = run_cli(backend, ["migrate", "--config", str(config), "--route", "orders", "--to",
                            "json", "--multipart-threshold", "1MiB"])  # fmt: skip
    assert run.code == 0, run.stderr
    assert run.summary["rewritten"] == 2
    head, body = stored(backend, bucket, "orders/big.xml")
    assert json.loads(body) == big
    assert head["Metadata"] == {"size": "big", "format": "json"}
    assert head["ETag"].endswith('-2"')  # two parts of 5 MiB (the smallest S3 allows)
    for key, doc in (("orders/big.xml", big), ("orders/small.xml", order(2))):
        versions = backend.direct.list_object_versions(Bucket=bucket, Prefix=key)["Versions"]
        assert len(versions) == 2, key
        old = next(v for v in versions if not v["IsLatest"])
        old_body = backend.read(bucket, key, VersionId=old["VersionId"])
        assert same_xml(old_body, xml_bytes(doc))
    assert backend.direct.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_to_xml_and_state_file_resume(
    backend: Backend, bucket: str, config_for: Any, tmp_path: Path
):
    for i in range(6):
        put_json(backend, bucket, f"orders/{i}.json", order(i))
    config = config_for(bucket)
    state = tmp_path / "state.jsonl"
    args = ["migrate", "--config", str(config), "--route", "orders", "--to", "xml",
            "--state", str(state)]  # fmt: skip
    first = run_cli(backend, args)
    assert first.code == 0 and first.summary["rewritten"] == 6
    for i in range(6):
        head, body = stored(backend, bucket, f"orders/{i}.json")
        assert same_xml(body, xml_bytes(order(i)))
        assert head["ContentType"] == "application/xml" and head["Metadata"]["format"] == "xml"
    lines = [json.loads(line) for line in state.read_text().splitlines()]
    assert lines[0]["route"] == "orders" and lines[0]["to"] == "xml"
    assert sorted(line["key"] for line in lines[1:]) == [f"orders/{i}.json" for i in range(6)]
    # A resumed run does not even read the keys recorded as done.
    second = run_cli(backend, args)
    assert second.summary["skipped"] == 6 and second.summary["rewritten"] == 0
    # Another target with the same state file is refused.
    other = [*args[:-3], "json", "--state", str(state)]
    refused = run_cli_raw(backend, other)
    assert refused.returncode == 2 and "another run" in refused.stderr


def run_cli_raw(backend: Backend, args: list[str]) -> Any:
    import subprocess

    from tests.support.proxy import FORMAT_PROXY
    from tests.transition.conftest import cli_env

    return subprocess.run(
        [str(FORMAT_PROXY), *args], env=cli_env(backend), capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("shards", [2])
def test_shards_cover_every_key_exactly_once(
    backend: Backend, bucket: str, config_for: Any, shards: int
):
    keys = [f"orders/{i:03d} k+ü.xml" for i in range(40)]
    for i, key in enumerate(keys):
        put_xml(backend, bucket, key, order(i))
    config = config_for(bucket)
    total = 0
    for index in range(shards):
        run = run_cli(backend, ["migrate", "--config", str(config), "--route", "orders",
                                "--to", "json", "--shard", f"{index}/{shards}"])  # fmt: skip
        assert run.code == 0
        assert run.summary["skipped"] == 0  # no key seen by two shards
        assert 0 < run.summary["rewritten"] < len(keys)
        total += run.summary["rewritten"]
    assert total == len(keys)
    for i, key in enumerate(keys):
        assert json.loads(stored(backend, bucket, key)[1]) == order(i)
    assert json_bytes(order(0))  # the module's JSON helper is the v2 app's
