"""proxy.s3.signing: the cached signing-key derivation signs exactly as botocore does."""

from __future__ import annotations

import datetime
import hashlib

import pytest
from botocore import auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

from proxy.s3.address import Endpoint, S3Address, build_upstream
from proxy.s3.signing import Signer

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
        ours = dict(Signer(region).sign("PUT", target, headers, body_hash, creds))
        request = AWSRequest(method="PUT", url=target.url)
        for name, value in headers:
            request.headers[name] = value
        request.headers["Host"] = target.host
        request.context["payload_hash"] = body_hash
        _StockPayload(creds, "s3", region).add_auth(request)
        assert ours["Authorization"] == request.headers["Authorization"]
        assert ours["X-Amz-Date"] == "20250131T123456Z"
