"""proxy.s3.signing: the proxy's own SigV4 signer (cached signing key, canonical request built
from the parsed request) signs byte for byte as botocore's ``S3SigV4Auth`` does."""

from __future__ import annotations

import datetime
import hashlib
import hmac

import pytest
from botocore import auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.errors import ProxyError
from proxy.s3.address import (
    Endpoint,
    S3Address,
    build_upstream,
    check_forwardable,
    parse_request,
)
from proxy.s3.signing import (
    UNSIGNED_PAYLOAD,
    KeyedHmac,
    Signer,
    forwardable_request_headers,
)

NOW = datetime.datetime(2025, 1, 31, 12, 34, 56)


class _StockPayload(auth.S3SigV4Auth):
    """botocore's own signer, told the same payload hash (its key derivation untouched)."""

    def payload(self, request: AWSRequest) -> str:
        return str(request.context["payload_hash"])


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-3"])
def test_signature_matches_botocore(monkeypatch: pytest.MonkeyPatch, region: str) -> None:
    monkeypatch.setattr(auth, "get_current_datetime", lambda: NOW)
    creds = ReadOnlyCredentials("AKIDEXAMPLE", f"secret-{region}", None)
    address = S3Address(
        bucket="b",
        key="docs/a b.json",
        raw_key="docs/a%20b.json",
        raw_query=(),
        params=frozenset(),
        values={},
        style="path",
        presigned=False,
    )
    target = build_upstream(address, Endpoint.parse("http://127.0.0.1:9000", virtual=False))
    body_hash = hashlib.sha256(b"{}").hexdigest()
    headers = [("Content-Type", "application/json"), ("x-amz-meta-format", "json")]
    for _ in range(2):  # the second signature comes from the cached key
        ours = dict(Signer(region).sign("PUT", target, headers, body_hash, creds, now=NOW))
        request = AWSRequest(method="PUT", url=target.url)
        for name, value in headers:
            request.headers[name] = value
        request.headers["Host"] = target.host
        request.context["payload_hash"] = body_hash
        _StockPayload(creds, "s3", region).add_auth(request)
        assert ours["Authorization"] == request.headers["Authorization"]
        assert ours["X-Amz-Date"] == "20250131T123456Z"


# --- property: any request the proxy forwards is signed exactly as botocore signs it ----------

# Key and query text: reserved, unreserved, percent-escapes, spaces, unicode, "=" and "&" inside.
_TEXT = st.lists(
    st.sampled_from([*list("aZ09-_.~/ !$'()*+,;=:@&?#%é€"), "%2F", "%20", "%41", "//"]),
    max_size=12,
).map("".join)
_QUERY_PAIR = st.tuples(
    st.sampled_from(["prefix", "list-type", "uploads", "partNumber", "X", "a b", "é", "versionId"]),
    st.one_of(st.none(), _TEXT),
)
_HEADER_NAMES = st.sampled_from(
    [
        "Content-Type",
        "content-md5",
        "x-amz-meta-Note",
        "X-Amz-Meta-note",
        "x-amz-checksum-crc32",
        "Range",
        "If-Match",
        "User-Agent",
        "Expect",
        "Cache-Control",
        "traceparent",
        "x-amz-storage-class",
    ]
)
_HEADER_VALUES = st.lists(st.sampled_from([*list('ab09 \t,;=/"é'), "  ", "\t\t"]), max_size=16).map(
    "".join
)
_CREDENTIALS = st.builds(
    ReadOnlyCredentials,
    st.sampled_from(["AKIDEXAMPLE", "ASIAEXAMPLE"]),
    st.sampled_from(["secret", "s3cr3t/+=x"]),
    st.sampled_from([None, "", "session-token/+=="]),
)
_TIMES = st.datetimes(
    min_value=datetime.datetime(2020, 1, 1), max_value=datetime.datetime(2030, 12, 31)
)


def _encoded(text: str) -> str:
    return "".join(
        c if c.isascii() and (c.isalnum() or c in "-_.~/%+!$'()*,;=:@") else f"%{ord(c):02X}"
        for c in text.encode("utf-8").decode("latin-1")
    )


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["GET", "PUT", "POST", "DELETE", "HEAD", "OPTIONS"]),
    bucket=st.sampled_from(["b", "my-bucket", "Bad_Bucket", "dots.in.name"]),
    key=_TEXT,
    query=st.lists(_QUERY_PAIR, max_size=4),
    headers=st.lists(st.tuples(_HEADER_NAMES, _HEADER_VALUES), max_size=6),
    endpoint=st.sampled_from(
        ["http://127.0.0.1:9000", "https://s3.example.com", "http://localhost:8333/base"]
    ),
    virtual=st.booleans(),
    payload=st.sampled_from([UNSIGNED_PAYLOAD, hashlib.sha256(b"x").hexdigest()]),
    creds=_CREDENTIALS,
    region=st.sampled_from(["us-east-1", "eu-west-3"]),
    when=_TIMES,
)
def test_every_forwarded_request_is_signed_as_botocore_signs_it(
    method: str,
    bucket: str,
    key: str,
    query: list[tuple[str, str | None]],
    headers: list[tuple[str, str]],
    endpoint: str,
    virtual: bool,
    payload: str,
    creds: ReadOnlyCredentials,
    region: str,
    when: datetime.datetime,
) -> None:
    raw_query = "&".join(_encoded(k) + ("" if v is None else "=" + _encoded(v)) for k, v in query)
    raw_target = f"/{bucket}/{_encoded(key)}" + (f"?{raw_query}" if raw_query else "")
    try:
        address = parse_request(raw_target, "proxy.local", ())
        check_forwardable(address)
    except ProxyError:
        return  # refused before signing
    target = build_upstream(address, Endpoint.parse(endpoint, virtual=virtual))
    forwarded = forwardable_request_headers(headers)

    ours = Signer(region).sign(method, target, forwarded, payload, creds, now=when)

    request = AWSRequest(method=method, url=target.url)
    for name, value in forwarded:
        request.headers[name] = value
    request.headers["Host"] = target.host
    request.context["payload_hash"] = payload
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(auth, "get_current_datetime", lambda: when)
        _StockPayload(creds, "s3", region).add_auth(request)
    assert ours == list(request.headers.items())


@settings(max_examples=300, deadline=None)
@given(key=st.binary(max_size=200), msg=st.text(max_size=300))
def test_the_signature_hmac_is_the_standard_one(key: bytes, msg: str) -> None:
    """The signer's HMAC from pre-hashed pads equals the hmac module's, for any key length
    (longer than a block, a key is hashed first) and message."""
    expected = hmac.new(key, msg.encode("utf-8"), hashlib.sha256).hexdigest()
    keyed = KeyedHmac(key)
    assert keyed.hexdigest(msg) == expected
    assert keyed.hexdigest(msg) == expected  # the pads are copied, never consumed
