"""proxy.datapath.spool without the server: spool bookkeeping, idle reaping."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.datapath.spool import UploadStore
from proxy.errors import EntityTooLarge, NoSuchUpload


def test_reserve_record_release_and_reap(tmp_path: Path) -> None:
    store = UploadStore(tmp_path, max_upload_bytes=100, idle_seconds=3600)
    up = store.create(
        bucket="b", key="k", route="r", headers=[], checksum_algorithm="crc32", checksum_type=None
    )
    token = store.reserve(up, 1, 60)
    with pytest.raises(EntityTooLarge):
        store.reserve(up, 2, 50)  # 60 reserved + 50 > 100
    part = store.write_part(up, 1, b"x" * 60, ("crc32",))
    store.record(up, part, token)
    assert up.size == 60 and up.reserved == {}
    assert store.room(up, 1) == 100 and store.room(up, 2) == 40
    replaced = store.write_part(up, 1, b"y" * 10, ())
    store.record(up, replaced, store.reserve(up, 1, 10))
    assert not part.path.exists() and replaced.path.exists()  # the old part file is gone
    with pytest.raises(NoSuchUpload):
        store.get(up.upload_id, "b", "other-key")
    store.idle_seconds = 0
    store.reap()
    assert len(store) == 0 and not up.directory.exists()
    store.close()
    assert not store.root.exists()


def test_part_written_after_abort_is_discarded(tmp_path: Path) -> None:
    store = UploadStore(tmp_path, max_upload_bytes=100)
    up = store.create(
        bucket="b", key="k", route="r", headers=[], checksum_algorithm=None, checksum_type=None
    )
    token = store.reserve(up, 1, 5)
    store.remove(up)  # aborted while the part was being written
    up.directory.mkdir()
    part = store.write_part(up, 1, b"hello", ())
    with pytest.raises(NoSuchUpload):
        store.record(up, part, token)
    assert not part.path.exists()
