import pytest

from proxy.errors import InvalidArgument, InvalidPartNumber, InvalidRange
from proxy.s3.ranges import ByteRange, parse_range, part_range


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-9", 100, (0, 9)),
        ("bytes=10-", 100, (10, 99)),
        ("bytes=-10", 100, (90, 99)),
        ("bytes=-1000", 100, (0, 99)),  # suffix longer than the object: all of it
        ("bytes=0-8388607", 100, (0, 99)),  # download_file's first range on a tiny object
        ("bytes=99-99", 100, (99, 99)),
        (" Bytes = 3 - 4 ", 100, (3, 4)),
    ],
)
def test_satisfiable_ranges(header, size, expected):
    r = parse_range(header, size)
    assert r is not None
    assert (r.start, r.end) == expected
    assert r.content_range == f"bytes {expected[0]}-{expected[1]}/{size}"
    assert r.length == expected[1] - expected[0] + 1


@pytest.mark.parametrize(
    "header", [None, "bytes=", "bytes=-", "items=0-1", "bytes=0-1,5-6", "bytes=5-3", "bytes=a-b"]
)
def test_ignored_ranges_serve_everything(header):
    assert parse_range(header, 100) is None


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=100-", 100), ("bytes=-0", 100), ("bytes=0-", 0)]
)
def test_unsatisfiable_ranges(header, size):
    with pytest.raises(InvalidRange) as exc:
        parse_range(header, size)
    assert exc.value.status == 416
    assert str(size) in exc.value.message


def test_slice_is_exact():
    body = bytes(range(50))
    assert bytes(ByteRange(5, 9, 50).slice(body)) == body[5:10]


def test_part_one_is_everything():
    r = part_range("1", 42)
    assert (r.start, r.end, r.content_range) == (0, 41, "bytes 0-41/42")


def test_other_parts_and_garbage():
    with pytest.raises(InvalidPartNumber) as exc:
        part_range("2", 42)
    assert exc.value.status == 416 and exc.value.code == "InvalidPartNumber"
    with pytest.raises(InvalidArgument):
        part_range("x", 42)
    with pytest.raises(InvalidArgument):
        part_range("0", 42)
