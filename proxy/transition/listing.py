"""The keys of a route: ListObjectsV2 pages, or an S3 Inventory manifest for huge buckets.

Both yield :class:`ObjectRef` (key, size) for the keys under the route's prefix, in listing
order, lazily. Keys ending in ``/`` ("folder" markers, never documents on a route) are left out,
as the data path leaves them alone. An Inventory manifest (``manifest.json``, a local file or
``s3://bucket/key``) lists CSV files (optionally gzip'd) in its destination bucket whose columns
its ``fileSchema`` names; keys there are URL-encoded (``+`` for a space), as Inventory writes them.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from proxy.config import RouteConfig
from proxy.errors import ConfigError
from proxy.transition.progress import Progress
from proxy.transition.shard import Shard


@dataclass(frozen=True, slots=True)
class ObjectRef:
    key: str
    size: int


def _wanted(key: str, prefix: str) -> bool:
    return key.startswith(prefix) and not key.endswith("/")


def list_prefix(client: Any, bucket: str, prefix: str) -> Iterator[ObjectRef]:
    """Every object under ``prefix``, page by page (botocore decodes url-encoded keys)."""
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": 1000}
    )
    for page in pages:
        for obj in page.get("Contents", ()):
            if _wanted(obj["Key"], prefix):
                yield ObjectRef(obj["Key"], int(obj.get("Size", 0)))


def _split_s3_url(url: str) -> tuple[str, str]:
    bucket, _, key = url.removeprefix("s3://").partition("/")
    if not bucket or not key:
        raise ConfigError("--manifest", f"expected s3://BUCKET/KEY, got {url!r}")
    return bucket, key


def load_manifest(client: Any, source: str) -> dict[str, Any]:
    try:
        if source.startswith("s3://"):
            bucket, key = _split_s3_url(source)
            raw = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        else:
            raw = Path(source).read_bytes()
        manifest = json.loads(raw)
    except OSError as exc:
        raise ConfigError("--manifest", f"cannot read '{source}': {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ConfigError("--manifest", f"'{source}' is not JSON: {exc}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        raise ConfigError(
            "--manifest", f"'{source}' has no 'files' list: not an Inventory manifest"
        )
    fmt = str(manifest.get("fileFormat", "CSV")).upper()
    if fmt != "CSV":
        raise ConfigError("--manifest", f"inventory format {fmt} is not supported (only CSV)")
    return manifest


def _columns(manifest: dict[str, Any]) -> list[str]:
    schema = manifest.get("fileSchema")
    if not isinstance(schema, str) or "Key" not in schema:
        raise ConfigError("--manifest", "fileSchema must name the CSV columns (with Bucket, Key)")
    return [c.strip() for c in schema.split(",")]


def _rows(body: Any, gzipped: bool) -> Iterator[list[str]]:
    stream = gzip.GzipFile(fileobj=body) if gzipped else body
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
    yield from csv.reader(text)


def list_manifest(client: Any, source: str, bucket: str, prefix: str) -> Iterator[ObjectRef]:
    """The current objects of ``bucket`` under ``prefix`` that the inventory lists."""
    manifest = load_manifest(client, source)
    columns = _columns(manifest)
    col = {name: i for i, name in enumerate(columns)}
    dest = str(manifest.get("destinationBucket", "")).rpartition(":")[2]
    if not dest:
        raise ConfigError("--manifest", "the manifest names no destinationBucket")
    for entry in manifest["files"]:
        file_key = entry["key"]
        body = client.get_object(Bucket=dest, Key=file_key)["Body"]
        try:
            for row in _rows(body, file_key.endswith(".gz")):
                if len(row) != len(columns):
                    continue
                if row[col["Bucket"]] != bucket:
                    continue
                # Versioned inventories list every version: keep the current, live ones.
                if "IsLatest" in col and row[col["IsLatest"]].lower() == "false":
                    continue
                if "IsDeleteMarker" in col and row[col["IsDeleteMarker"]].lower() == "true":
                    continue
                key = unquote_plus(row[col["Key"]])
                if _wanted(key, prefix):
                    size_text = row[col["Size"]] if "Size" in col else ""
                    yield ObjectRef(key, int(size_text) if size_text.isdigit() else 0)
        finally:
            body.close()


def keys_of(
    client: Any, route: RouteConfig, shard: Shard, manifest: str | None
) -> Iterator[ObjectRef]:
    """The route's keys in this shard, from the listing or the manifest."""
    refs = (
        list_manifest(client, manifest, route.bucket, route.prefix)
        if manifest
        else list_prefix(client, route.bucket, route.prefix)
    )
    return (ref for ref in refs if shard.owns(ref.key))


def count_in_background(listing: Callable[[], Iterator[ObjectRef]], progress: Progress) -> None:
    """Count the keys with a second, cheap pass over the listing, for the progress's ETA."""

    def count() -> None:
        try:
            progress.set_total(sum(1 for _ in listing()))
        except Exception:  # only the ETA is lost
            return

    threading.Thread(target=count, name="count-keys", daemon=True).start()
