"""Unit tests of the transition helpers: shards, the state file, what a rewrite carries over,
Inventory manifest parsing, the rate limit and the progress output."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from proxy.errors import ConfigError
from proxy.transition.carry import write_args
from proxy.transition.client import RateLimit
from proxy.transition.listing import list_manifest
from proxy.transition.progress import Progress
from proxy.transition.shard import Shard, parse_shard
from proxy.transition.state import StateFile

KEYS = [f"orders/{i} ü+ //x" for i in range(3000)]


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_shards_partition_the_keys(n: int):
    owners = [[i for i in range(n) if Shard(i, n).owns(k)] for k in KEYS]
    assert all(len(o) == 1 for o in owners)
    sizes = [sum(1 for o in owners if o == [i]) for i in range(n)]
    assert min(sizes) > len(KEYS) / n * 0.85  # the hash spreads keys evenly


def test_parse_shard():
    assert parse_shard(None) == Shard(0, 1)
    assert parse_shard("2/5") == Shard(2, 5)
    assert parse_shard("/5", {"JOB_COMPLETION_INDEX": "4"}) == Shard(4, 5)
    assert parse_shard("5", {"JOB_COMPLETION_INDEX": "1"}) == Shard(1, 5)
    for bad in ("5/5", "-1/2", "a/b", "0/0"):
        with pytest.raises(ConfigError):
            parse_shard(bad, {})
    with pytest.raises(ConfigError, match="JOB_COMPLETION_INDEX"):
        parse_shard("/3", {})


HEADER = {"route": "orders", "bucket": "b", "prefix": "orders/", "to": "json", "shard": "0/1"}


def test_state_file_resumes_and_ignores_a_torn_last_line(tmp_path: Path):
    path = tmp_path / "state.jsonl"
    state = StateFile(path, HEADER)
    threads = [
        threading.Thread(target=state.record, args=({"key": f"k{i}", "outcome": "rewritten"},))
        for i in range(50)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    state.record({"key": "bad", "outcome": "failed"})
    state.record({"upload": "u1", "key": "big"})
    state.record({"upload": "u2", "key": "big2"})
    state.record({"upload_done": "u2"})
    state.close()
    with path.open("ab") as f:
        f.write(b'{"key": "k-torn", "outc')  # killed mid-line
    again = StateFile(path, HEADER)
    assert again.resumed.done == {f"k{i}" for i in range(50)}  # failed keys are retried
    assert again.resumed.open_uploads == {"u1": "big"}
    again.close()
    with pytest.raises(ConfigError, match="another run"):
        StateFile(path, {**HEADER, "to": "xml"})


def test_write_args_keep_everything_but_the_body():
    expires = dt.datetime(2030, 1, 2, tzinfo=dt.UTC)
    response = {
        "Metadata": {"owner": "a", "format": "xml"},
        "ContentType": "application/xml; charset=utf-8",
        "CacheControl": "no-cache",
        "ContentDisposition": "inline",
        "ContentEncoding": "identity",
        "ContentLanguage": "fr",
        "Expires": expires,
        "StorageClass": "STANDARD_IA",
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": "arn:key",
        "ChecksumCRC32C": "abc=",
        "ETag": '"x"',
        "ContentLength": 10,
    }
    tags = [{"Key": "a b", "Value": "c&d"}]
    assert write_args(response, "json", tags) == {
        "ContentType": "application/json",
        "Metadata": {"owner": "a", "format": "json"},
        "CacheControl": "no-cache",
        "ContentDisposition": "inline",
        "ContentEncoding": "identity",
        "ContentLanguage": "fr",
        "Expires": expires,
        "StorageClass": "STANDARD_IA",
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": "arn:key",
        "Tagging": "a+b=c%26d",
        "ChecksumAlgorithm": "CRC32C",
    }
    plain = write_args({"StorageClass": "STANDARD"}, "xml", [])
    assert plain == {"ContentType": "application/xml", "Metadata": {"format": "xml"}}


class _FakeS3:
    def __init__(self, objects: dict[tuple[str, str], bytes]) -> None:
        self.objects = objects

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        return {"Body": io.BytesIO(self.objects[Bucket, Key])}


def test_manifest_rows_are_decoded_and_filtered(tmp_path: Path):
    rows = (
        '"src","orders%2Fa+b%2B%C3%BC","12","true","false"\n'
        '"src","orders%2Fold","5","false","false"\n'  # a non-current version
        '"src","orders%2Fgone","0","true","true"\n'  # a delete marker
        '"other","orders%2Fx","1","true","false"\n'
        '"src","elsewhere%2Fy","1","true","false"\n'
        '"src","orders%2Fdir%2F","0","true","false"\n'
    )
    s3 = _FakeS3({("dest", "data/1.csv.gz"): gzip.compress(rows.encode())})
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({
        "destinationBucket": "arn:aws:s3:::dest", "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size, IsLatest, IsDeleteMarker",
        "files": [{"key": "data/1.csv.gz"}],
    }))  # fmt: skip
    refs = list(list_manifest(s3, str(manifest), "src", "orders/"))
    assert [(r.key, r.size) for r in refs] == [("orders/a b+ü", 12)]
    manifest.write_text(json.dumps({"fileFormat": "ORC", "files": []}))
    with pytest.raises(ConfigError, match="ORC"):
        list(list_manifest(s3, str(manifest), "src", "orders/"))


def test_rate_limit_caps_requests_per_second():
    limit = RateLimit(50)
    started = time.monotonic()
    for _ in range(100):
        limit.acquire()
    # 50 at once (a one-second burst), then 50 more at 50/s.
    assert 0.9 < time.monotonic() - started < 1.6


def test_progress_is_json_lines_off_a_terminal():
    out = io.StringIO()
    with Progress("scan orders", stream=out, interval=0.05, tty=False) as progress:
        progress.set_total(4)
        for outcome in ("xml", "xml", "json"):
            progress.add(outcome, 10)
        time.sleep(0.15)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    last = lines[-1]
    assert last["done"] == 3 and last["total"] == 4 and last["bytes"] == 30
    assert last["counts"] == {"json": 1, "xml": 2}
    assert last["eta_s"] is not None and last["rate_per_s"] > 0


def test_progress_on_a_terminal_is_one_live_line():
    out = io.StringIO()
    with Progress("migrate orders", stream=out, interval=0.05, tty=True) as progress:
        progress.add("rewritten")
        time.sleep(0.12)
    text = out.getvalue()
    assert text.count("\n") == 1 and "\r\x1b[K" in text
    assert "migrate orders: 1/? [rewritten=1]" in text and "ETA ?" in text


def test_commands_refuse_bad_usage_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    import yaml

    from proxy.app.cli import main
    from tests.datapath.orders import orders_route

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "app_version": "v2", "upstream": {"endpoint": "embedded"},
        "routes": [orders_route("shop", store="json")],
    }))  # fmt: skip
    assert main(["scan", "--config", str(config), "--route", "nope"]) == 2
    assert "no route named 'nope'" in capsys.readouterr().err
    assert main(["migrate", "--config", str(config), "--route", "orders", "--to", "json"]) == 2
    assert "--upstream" in capsys.readouterr().err
    args = ["migrate", "--config", str(config), "--route", "orders", "--to", "json",
            "--upstream", "http://127.0.0.1:9", "--shard", "3/2"]  # fmt: skip
    assert main(args) == 2
    assert "0 <= I < N" in capsys.readouterr().err
