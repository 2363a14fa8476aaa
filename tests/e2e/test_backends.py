"""The test backends themselves: real servers that enforce SigV4 (the harness's own checks)."""

from __future__ import annotations

import hashlib

import botocore.exceptions
import pytest

from tests.support.backends import Backend, Credentials, direct_client


def test_backend_stores_bytes_exactly(backend: Backend, bucket: str) -> None:
    body = bytes(range(256)) * 1000
    backend.direct.put_object(Bucket=bucket, Key="dir/a b+c", Body=body)
    assert backend.keys(bucket) == ["dir/a b+c"]
    assert backend.sha256(bucket, "dir/a b+c") == hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize("wrong", ["access_key", "secret_key"])
def test_backend_rejects_wrong_credentials(backend: Backend, bucket: str, wrong: str) -> None:
    good = backend.credentials
    creds = Credentials(
        "AKIAWRONGWRONGWRONG1" if wrong == "access_key" else good.access_key,
        "wrong-secret" if wrong == "secret_key" else good.secret_key,
    )
    client = direct_client(backend.endpoint, creds, retries={"total_max_attempts": 1})
    with pytest.raises(botocore.exceptions.ClientError) as info:
        client.put_object(Bucket=bucket, Key="nope", Body=b"x")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert info.value.response["Error"]["Code"] in {
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "AccessDenied",
    }
    if wrong == "secret_key":
        assert info.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert not backend.exists(bucket, "nope")
