"""Parsing client request targets and building upstream URLs (pure)."""

from __future__ import annotations

import pytest

from proxy.s3.address import (
    Endpoint,
    build_upstream,
    canonical_path,
    forwarded_query,
    parse_request,
    virtual_bucket,
)

SUFFIXES = ("localhost", "s3.local")
PATH_EP = Endpoint.parse("http://127.0.0.1:9000", virtual=False)
VIRT_EP = Endpoint.parse("https://s3.eu-west-1.amazonaws.com", virtual=True)


@pytest.mark.parametrize(
    "raw_key",
    [
        "a%20b",  # space
        "plus+sign",
        "colon:x",
        "dollar$",
        "tilde~x",
        "slash%2Fencoded",
        "double//slash",
        "trailing/",
        "%C3%BCn%C3%AF/%C3%A7%C3%B8d%C3%A9",  # unicode, encoded as SDKs do
        "/leading-slash-key",
    ],
)
def test_path_style_keys_are_forwarded_with_the_same_meaning(raw_key: str) -> None:
    addr = parse_request(f"/bucket/{raw_key}", "127.0.0.1:15480", SUFFIXES)
    assert addr.bucket == "bucket"
    assert addr.raw_key == raw_key
    target = build_upstream(addr, PATH_EP)
    # The forwarded path decodes to exactly the key the client meant.
    from urllib.parse import unquote

    assert target.path.startswith("/bucket/")
    assert unquote(target.path[len("/bucket/") :]) == unquote(raw_key)
    assert target.url == f"http://127.0.0.1:9000{target.path}"


def test_sdk_encoded_paths_are_forwarded_byte_for_byte() -> None:
    raw = "/bucket/a%20b%2Bc%3A%24~/x//y/%C3%A9%2F"
    addr = parse_request(raw, "127.0.0.1", SUFFIXES)
    assert build_upstream(addr, PATH_EP).path == raw


def test_raw_reserved_characters_get_sigv4_canonical_encoding() -> None:
    # A hand-written client sending raw "+", ":", "$", " " and lower-case escapes.
    assert canonical_path("/b/a+b:c$d e%2fx") == "/b/a%2Bb%3Ac%24d%20e%2Fx"
    assert canonical_path("/b/ü") == "/b/%C3%BC"
    assert canonical_path("/b/100%") == "/b/100%25"  # a lone % is data, not an escape


def test_bucket_level_and_service_level() -> None:
    assert parse_request("/", "localhost:15480", SUFFIXES).bucket is None
    a = parse_request("/bucket", "localhost", SUFFIXES)
    assert (a.bucket, a.key) == ("bucket", None)
    b = parse_request("/bucket/?list-type=2&prefix=a%2Fb", "localhost", SUFFIXES)
    assert (b.bucket, b.key) == ("bucket", None)
    assert b.values == {"list-type": "2", "prefix": "a/b"}
    assert build_upstream(b, PATH_EP).url == (
        "http://127.0.0.1:9000/bucket?list-type=2&prefix=a%2Fb"
    )
    assert build_upstream(parse_request("/", "x", SUFFIXES), PATH_EP).path == "/"


@pytest.mark.parametrize(
    ("host", "bucket"),
    [
        ("my-bucket.localhost:15480", "my-bucket"),
        ("my.dotted.bucket.localhost", "my.dotted.bucket"),
        ("MY-BUCKET.LOCALHOST", "my-bucket"),
        ("b.s3.local:443", "b"),
        ("localhost:15480", None),
        ("localhost", None),
        ("127.0.0.1:15480", None),
        ("[::1]:15480", None),
        ("format-proxy.default.svc:15480", None),
        ("", None),
    ],
)
def test_virtual_host_detection(host: str, bucket: str | None) -> None:
    assert virtual_bucket(host, SUFFIXES) == bucket


def test_virtual_hosted_request_to_path_style_upstream() -> None:
    addr = parse_request("/dir/a%20b//c/?tagging", "shop.localhost:15480", SUFFIXES)
    assert addr.style == "virtual"
    assert (addr.bucket, addr.key) == ("shop", "dir/a b//c/")
    target = build_upstream(addr, PATH_EP)
    assert target.url == "http://127.0.0.1:9000/shop/dir/a%20b//c/?tagging"


def test_path_style_request_to_virtual_upstream() -> None:
    addr = parse_request("/shop/k%2Fx?uploads", "127.0.0.1", SUFFIXES)
    target = build_upstream(addr, VIRT_EP)
    assert target.host == "shop.s3.eu-west-1.amazonaws.com"
    assert target.url == "https://shop.s3.eu-west-1.amazonaws.com/k%2Fx?uploads"
    # Buckets that cannot be a DNS label stay path style.
    dotted = build_upstream(parse_request("/a.b/k", "127.0.0.1", SUFFIXES), VIRT_EP)
    assert dotted.url == "https://s3.eu-west-1.amazonaws.com/a.b/k"


def test_endpoint_with_port_and_base_path() -> None:
    ep = Endpoint.parse("http://[::1]:8080/s3/", virtual=False)
    target = build_upstream(parse_request("/b/k", "x", SUFFIXES), ep)
    assert target.url == "http://[::1]:8080/s3/b/k"
    assert target.host == "[::1]:8080"
    ep443 = Endpoint.parse("https://example.com:443", virtual=False)
    assert build_upstream(parse_request("/b/k", "x", SUFFIXES), ep443).host == "example.com"


def test_presigned_auth_parameters_are_removed() -> None:
    v4 = (
        "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20240101%2Fus-east-1"
        "&X-Amz-Date=20240101T000000Z&X-Amz-Expires=300&X-Amz-SignedHeaders=host"
        "&X-Amz-Security-Token=TOKEN&X-Amz-Signature=abcdef&response-content-type=text%2Fplain"
    )
    addr = parse_request(v4, "127.0.0.1", SUFFIXES)
    assert addr.presigned
    assert addr.raw_query == (("response-content-type", "text%2Fplain"),)
    assert build_upstream(addr, PATH_EP).query == "response-content-type=text%2Fplain"
    v2 = "/b/k?AWSAccessKeyId=AK&Signature=c2ln%3D&Expires=1700000000&versionId=3"
    addr2 = parse_request(v2, "127.0.0.1", SUFFIXES)
    assert addr2.presigned
    assert build_upstream(addr2, PATH_EP).query == "versionId=3"
    assert not parse_request("/b/k?versionId=3", "127.0.0.1", SUFFIXES).presigned


def test_query_encoding_is_canonical_and_order_kept() -> None:
    assert forwarded_query((("uploads", None),)) == "uploads"
    assert forwarded_query((("prefix", "a/b c"), ("delimiter", "/"))) == (
        "prefix=a%2Fb%20c&delimiter=%2F"
    )
    # A raw "+" in a query means a space (form encoding) and is sent as %20.
    assert forwarded_query((("prefix", "a+b"),)) == "prefix=a%20b"
    assert forwarded_query((("prefix", "a%2bb"),)) == "prefix=a%2Bb"


def test_absolute_form_target() -> None:
    addr = parse_request("http://127.0.0.1:15480/b/k?acl", "127.0.0.1", SUFFIXES)
    assert (addr.bucket, addr.key, addr.params) == ("b", "k", frozenset({"acl"}))


# --- one parse for routing and forwarding ----------------------------------------------------


def test_the_routed_key_is_decoded_from_the_forwarded_form() -> None:
    from urllib.parse import unquote

    for raw in ["a+b", "%6Frders/x", "orders%2fx", "x%0A", "100%", "%C3%A9", "sp ace"]:
        addr = parse_request(f"/bucket/{raw}", "127.0.0.1", SUFFIXES)
        path = build_upstream(addr, PATH_EP).path
        assert unquote(path.removeprefix("/bucket/")) == addr.key
    # Escapes of unreserved characters are decoded; "%2F" is not (it is not "/").
    assert canonical_path("/b/%6Frders%7E%2f%41") == "/b/orders~%2FA"


def test_a_trailing_newline_is_not_canonical() -> None:
    # "$" matched before a final "\n": the bucket went out raw and the newline was dropped.
    assert canonical_path("shop-data\n") == "shop-data%0A"
    assert canonical_path("x\n") != "x\n"


@pytest.mark.parametrize(
    "target",
    [
        "/shop-data%0A/orders/x",
        "/shop-data%0d/orders/x",
        "/shop-data%09/k",
        "/shop-data%00/k",
        "/shop-data%2Forders/x",
        "/./orders/x",
        "/../k",
        "//orders/x",
        "/a..b/k",
        "/-bucket/k",
        "/bucket-/k",
        "/192.168.1.1/k",
        "/b%C3%A9/k",
    ],
)
def test_buckets_that_cannot_be_forwarded_unchanged_are_refused(target: str) -> None:
    from proxy.errors import InvalidBucketName
    from proxy.s3.address import check_forwardable

    with pytest.raises(InvalidBucketName):
        check_forwardable(parse_request(target, "127.0.0.1", SUFFIXES))


def test_forwardable_requests_pass() -> None:
    from proxy.s3.address import check_forwardable

    for target in ["/", "/b", "/b/k", "/My_Legacy.Bucket/k", "/bucket//leading", "/b/x%0Ay"]:
        check_forwardable(parse_request(target, "127.0.0.1", SUFFIXES))


def test_keys_that_are_not_utf8_are_refused() -> None:
    from proxy.errors import InvalidURI
    from proxy.s3.address import check_forwardable

    with pytest.raises(InvalidURI):
        check_forwardable(parse_request("/bucket/a%FFb", "127.0.0.1", SUFFIXES))


def test_virtual_host_bucket_checks() -> None:
    from proxy.errors import InvalidBucketName
    from proxy.s3.address import check_forwardable

    assert virtual_bucket("shop.localhost.:15480", SUFFIXES) == "shop"
    assert virtual_bucket("shop.localhost.", SUFFIXES) == "shop"
    with pytest.raises(InvalidBucketName):
        check_forwardable(parse_request("/k", "shop%0a.localhost", SUFFIXES))
    with pytest.raises(InvalidBucketName):
        check_forwardable(parse_request("/k", "a/b.localhost", SUFFIXES))


@pytest.mark.parametrize(
    ("key", "path_style", "in_host"),
    [
        ("orders/x", ("b", "orders/x"), ("b", "orders/x")),
        ("a.xml", ("b", "a.xml"), ("b", "a.xml")),
        ("/orders/x", ("b", "orders/x"), ("b", "orders/x")),
        ("orders//x", ("b", "orders/x"), ("b", "orders/x")),
        ("./orders/x", ("b", "orders/x"), ("b", "orders/x")),
        ("x/../orders/x", ("b", "orders/x"), ("b", "orders/x")),
        ("../c/orders/x", ("c", "orders/x"), ("b", "c/orders/x")),
        ("orders/.", ("b", "orders/"), ("b", "orders/")),
        ("..", (None, None), ("b", None)),
    ],
)
def test_folded_reading(key: str, path_style: tuple, in_host: tuple) -> None:
    from proxy.s3.address import folded

    assert folded("b", key) == path_style
    assert folded("b", key, in_host=True) == in_host
