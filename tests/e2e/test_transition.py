"""The whole XML → JSON rollout, end to end, with exact metric counts.

One real backend (moto, SigV4 enforced) and four proxies — Writer v1, Writer v2, Reader v1,
Reader v2 — each its own ``format-proxy serve`` process with its own declared version:

1. Writer v1 writes XML; both readers read (v2 gets JSON, translated).
2. Writer v2 starts writing with ``store: xml``; v1 readers still get XML from it.
3. ``store`` flips to ``json`` (the writers restart with the new config: phases are
   configuration); new objects are stored as JSON; v1 readers get XML, translated.
4. Only v2 remains; translations drop to those of the old XML objects.

Every read — boto3 ``get_object``, ``download_file`` in both checksum modes (HEAD+GET, and one
ranged GET), s3fs ranged reads — returns a document equal as data to what was written. The
test keeps its own model of which translations must have happened: it counts the clients'
successful GET/HEAD calls itself (botocore ``after-call`` events, independent of the proxy)
and knows every object's stored format. After every step each live proxy's ``/metrics`` must
equal that model exactly, by direction and operation, with zero failures and zero failed
requests.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3.s3.transfer
import pytest

from tests.datapath.orders import big_order, json_bytes, order, orders_route, same_xml, xml_bytes
from tests.support.backends import Backend
from tests.support.clients import boto3_client, s3fs_filesystem
from tests.support.proxy import ProxyProcess

MiB = 1024 * 1024
FORMATS = {"v1": "xml", "v2": "json"}
DIRECTIONS = ("xml_to_json", "json_to_xml")
OPERATIONS = ("get", "head", "put")
OUTCOMES = ("native", "translated", "failed")
_OPS = {"GetObject": "get", "HeadObject": "head"}
SMALL_PARTS = boto3.s3.transfer.TransferConfig(
    multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=4
)


@dataclass
class Stored:
    doc: dict[str, Any]
    fmt: str  # format the object is stored in
    big: bool = False


@dataclass
class Pod:
    """One app replica's sidecar: a proxy process, its clients and the metrics it must show."""

    role: str
    version: str
    store: str
    proxy: ProxyProcess
    clients: dict[str, Any] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)  # successful GET/HEAD, client-side
    expected: Counter[tuple[str, ...]] = field(default_factory=Counter)

    @property
    def fmt(self) -> str:
        return FORMATS[self.version]

    def connect(self) -> None:
        def count(http_response: Any, model: Any, **_: Any) -> None:
            if model.name in _OPS and http_response.status_code < 300:
                self.calls[_OPS[model.name]] += 1

        self.clients = {
            "default": boto3_client(self.proxy),
            "when_required": boto3_client(self.proxy, checksum_mode="when_required"),
        }
        fs = s3fs_filesystem(self.proxy)
        self.clients["s3fs"] = fs
        for client in (self.clients["default"], self.clients["when_required"], fs.s3):
            client.meta.events.register("after-call.s3", count)

    # --- the model -------------------------------------------------------------------------

    def account_reads(self, delta: Counter[str], stored_fmt: str) -> None:
        for op, n in delta.items():
            if stored_fmt == self.fmt:
                self.expected["objects", op, "native"] += n
            else:
                self.expected["translations", f"{stored_fmt}_to_{self.fmt}", op] += n
                self.expected["objects", op, "translated"] += n

    def account_write(self) -> None:
        stored = self.stored_format()
        if stored == self.fmt:
            self.expected["objects", "put", "native"] += 1
        else:
            self.expected["translations", f"{self.fmt}_to_{stored}", "put"] += 1
            self.expected["objects", "put", "translated"] += 1

    def stored_format(self) -> str:
        return self.fmt if self.store == "as-written" else self.store

    def check_metrics(self) -> None:
        s = self.proxy.scrape()
        for d in DIRECTIONS:
            for op in OPERATIONS:
                got = s.value(
                    "format_proxy_translations_total", route="orders", direction=d, operation=op
                )
                want = self.expected["translations", d, op]
                assert got == want, f"{self.role}: translations {d}/{op}: {got} != {want}"
        for op in OPERATIONS:
            for outcome in OUTCOMES:
                got = s.value(
                    "format_proxy_route_objects_total",
                    route="orders",
                    operation=op,
                    outcome=outcome,
                )
                want = self.expected["objects", op, outcome]
                assert got == want, f"{self.role}: objects {op}/{outcome}: {got} != {want}"
        assert s.value("format_proxy_translation_failures_total") == 0, self.role
        failed = [
            (labels, v)
            for labels, v in s.find("format_proxy_requests_total")
            if int(labels["code"]) >= 400 and v
        ]
        assert failed == [], f"{self.role}: failed requests {failed}"


class Rollout:
    def __init__(self, backend: Backend, bucket: str, start_proxy: Any, tmp: Path) -> None:
        self.backend = backend
        self.bucket = bucket
        self.start_proxy = start_proxy
        self.tmp = tmp
        self.objects: dict[str, Stored] = {}
        self.pods: dict[str, Pod] = {}
        self._n = 0

    def start(self, role: str, version: str, store: str) -> Pod:
        old = self.pods.pop(role, None)
        if old is not None:
            assert old.proxy.terminate() == 0
        proxy = self.start_proxy(
            self.backend,
            app_version=version,
            routes=[orders_route(self.bucket, store=store)],
            name=f"{role}-{store}",
        )
        pod = Pod(role, version, store, proxy)
        pod.connect()
        self.pods[role] = pod
        return pod

    def retire(self, role: str) -> None:
        pod = self.pods.pop(role)
        pod.check_metrics()
        assert pod.proxy.terminate() == 0

    # --- writes --------------------------------------------------------------------------

    def write(self, writer: Pod, *, big: bool = False) -> str:
        self._n += 1
        key = f"orders/{self._n:03d}-{writer.role}.{writer.fmt}"
        doc = big_order(self._n, 6 * MiB) if big else order(self._n, 25)
        body = json_bytes(doc) if writer.fmt == "json" else xml_bytes(doc)
        s3 = writer.clients["default" if self._n % 2 else "when_required"]
        if big:
            src = self.tmp / f"upload-{self._n}"
            src.write_bytes(body)
            s3.upload_file(str(src), self.bucket, key, Config=SMALL_PARTS)
        else:
            s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        writer.account_write()
        stored_fmt = writer.stored_format()
        stored = self.backend.read(self.bucket, key)
        meta = self.backend.direct.head_object(Bucket=self.bucket, Key=key)["Metadata"]
        assert meta["format"] == stored_fmt
        if stored_fmt == writer.fmt:
            assert stored == body  # stored exactly as written
        elif stored_fmt == "json":
            assert json.loads(stored) == doc
        else:
            assert same_xml(stored, xml_bytes(doc))
        self.objects[key] = Stored(doc, stored_fmt, big)
        return key

    # --- reads -----------------------------------------------------------------------------

    def check_document(self, reader: Pod, key: str, body: bytes, how: str) -> None:
        doc = self.objects[key].doc
        if reader.fmt == "json":
            assert json.loads(body) == doc, (reader.role, key, how)
        else:
            assert same_xml(body, xml_bytes(doc)), (reader.role, key, how)

    def read(self, reader: Pod, key: str) -> None:
        """Read ``key`` every way a client reads; account for every GET/HEAD it made."""
        before = Counter(reader.calls)
        c = reader.clients
        body = c["default"].get_object(Bucket=self.bucket, Key=key)["Body"].read()
        self.check_document(reader, key, body, "get_object")
        for mode in ("default", "when_required"):
            target = self.tmp / f"dl-{reader.role}-{mode}"
            config = SMALL_PARTS if self.objects[key].big else None
            c[mode].download_file(self.bucket, key, str(target), Config=config)
            self.check_document(reader, key, target.read_bytes(), f"download_file/{mode}")
        if not self.objects[key].big:
            fs = c["s3fs"]
            with fs.open(f"{self.bucket}/{key}", "rb", block_size=2048, cache_type="bytes") as f:
                pieces = []
                while piece := f.read(1500):  # many small ranged GETs
                    pieces.append(piece)
            self.check_document(reader, key, b"".join(pieces), "s3fs ranged reads")
            tail = fs.cat_file(f"{self.bucket}/{key}", start=len(body) - 40)
            assert tail == body[-40:]  # a ranged read without HEAD
        delta = Counter(reader.calls)
        delta.subtract(before)
        assert delta["get"] > 0
        reader.account_reads(+delta, self.objects[key].fmt)

    def read_everything(self, *readers: Pod) -> None:
        for reader in readers:
            for key in self.objects:
                self.read(reader, key)

    def check_all_metrics(self) -> None:
        for pod in self.pods.values():
            pod.check_metrics()


@pytest.mark.slow
def test_four_proxy_rollout_with_exact_metrics(
    moto_backend: Backend, start_proxy: Any, tmp_path: Path
) -> None:
    backend = moto_backend
    bucket = backend.new_bucket("rollout")
    r = Rollout(backend, bucket, start_proxy, tmp_path)

    # Step 1: only v1 writes; XML is stored as written; v2 readers get JSON, translated.
    writer_v1 = r.start("writer-v1", "v1", "xml")
    reader_v1 = r.start("reader-v1", "v1", "xml")
    reader_v2 = r.start("reader-v2", "v2", "xml")
    for _ in range(3):
        r.write(writer_v1)
    r.read_everything(reader_v1, reader_v2)
    r.check_all_metrics()
    assert reader_v2.expected["translations", "xml_to_json", "get"] > 0
    assert not any(k[0] == "translations" for k in reader_v1.expected)

    # Step 2: v2 writers arrive, storing XML; v1 readers still get XML (native for them).
    writer_v2 = r.start("writer-v2", "v2", "xml")
    for _ in range(2):
        r.write(writer_v2)
    r.write(writer_v2, big=True)  # a multipart upload, assembled and translated
    r.write(writer_v1)
    r.read_everything(reader_v1, reader_v2)
    r.check_all_metrics()
    assert writer_v2.expected["translations", "json_to_xml", "put"] == 3
    assert not any(k[0] == "translations" for k in reader_v1.expected)

    # Step 3: store flips to json (writers restart with the new config).
    writer_v1 = r.start("writer-v1", "v1", "json")
    writer_v2 = r.start("writer-v2", "v2", "json")
    for _ in range(2):
        r.write(writer_v2)
    r.write(writer_v1)  # v1's XML is now stored as JSON
    new_json = [k for k, o in r.objects.items() if o.fmt == "json"]
    assert len(new_json) == 3
    reader_v1_before = Counter(reader_v1.expected)
    r.read_everything(reader_v1, reader_v2)
    r.check_all_metrics()
    v1_new = Counter(reader_v1.expected)
    v1_new.subtract(reader_v1_before)
    assert v1_new["translations", "json_to_xml", "get"] > 0  # v1 readers now translate

    # Step 4: only v2 remains; translations drop to the old XML objects.
    r.retire("writer-v1")
    r.retire("reader-v1")
    r.write(writer_v2)
    before = Counter(reader_v2.expected)
    for key, obj in r.objects.items():
        r.read(reader_v2, key)
        step = Counter(reader_v2.expected)
        step.subtract(before)
        translated = step["objects", "get", "translated"] + step["objects", "head", "translated"]
        assert (translated > 0) == (obj.fmt == "xml"), key
        before = Counter(reader_v2.expected)
    r.check_all_metrics()
    old_xml = [k for k, o in r.objects.items() if o.fmt == "xml"]
    assert old_xml and all(k.endswith(("writer-v1.xml", "writer-v2.json")) for k in old_xml)
