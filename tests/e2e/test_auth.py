"""Authentication: every form of client auth is stripped; the proxy re-signs with its own keys."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
import urllib.error
import urllib.request
from email.utils import formatdate

import botocore.exceptions
import pytest

from tests.support.backends import Backend, Credentials
from tests.support.clients import CLIENT_CREDENTIALS, AwsCli, boto3_client
from tests.support.proxy import ProxyProcess
from tests.support.rawhttp import send


def test_wrong_client_credentials_still_succeed(proxy: ProxyProcess, backend: Backend, bucket):
    """The client signs with keys the backend never saw (and a session token); it works."""
    for creds in (
        CLIENT_CREDENTIALS,
        Credentials("AKIAOTHERCLIENT00002", "another-wrong-secret"),
    ):
        client = boto3_client(proxy, credentials=creds)
        # The same client straight at the backend is refused: these keys are really wrong.
        direct = boto3_client(backend.endpoint, credentials=creds)
        with pytest.raises(botocore.exceptions.ClientError) as info:
            direct.put_object(Bucket=bucket, Key="direct", Body=b"x")
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        client.put_object(Bucket=bucket, Key=f"k-{creds.access_key}", Body=b"signed by proxy")
        assert backend.read(bucket, f"k-{creds.access_key}") == b"signed by proxy"


def test_wrong_proxy_credentials_give_backend_error_unchanged(
    start_proxy, backend: Backend, bucket: str
) -> None:
    bad = Credentials(backend.credentials.access_key, "not-the-right-secret")
    proxy = start_proxy(credentials=bad)
    # What the backend says to a request signed with that key, directly:
    direct = boto3_client(backend.endpoint, credentials=bad)
    with pytest.raises(botocore.exceptions.ClientError) as direct_info:
        direct.put_object(Bucket=bucket, Key="k", Body=b"x")
    with pytest.raises(botocore.exceptions.ClientError) as info:
        boto3_client(proxy).put_object(Bucket=bucket, Key="k", Body=b"x")
    resp = info.value.response
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert resp["Error"]["Code"] == "SignatureDoesNotMatch"
    assert resp["Error"]["Code"] == direct_info.value.response["Error"]["Code"]
    assert resp["Error"]["Message"] == direct_info.value.response["Error"]["Message"]
    assert not backend.exists(bucket, "k")


def test_sigv2_authorization_header_is_stripped(proxy: ProxyProcess, backend: Backend, bucket):
    """An old-style ``Authorization: AWS key:signature`` request is re-signed too."""
    body = b"sigv2 client"
    date = formatdate(usegmt=True)
    to_sign = f"PUT\n\napplication/octet-stream\n{date}\n/{bucket}/v2"
    sig = base64.b64encode(
        hmac.new(CLIENT_CREDENTIALS.secret_key.encode(), to_sign.encode(), hashlib.sha1).digest()
    ).decode()
    resp = send(
        proxy.endpoint,
        "PUT",
        f"/{bucket}/v2",
        headers={
            "Date": date,
            "Content-Type": "application/octet-stream",
            "Authorization": f"AWS {CLIENT_CREDENTIALS.access_key}:{sig}",
            "X-Amz-Security-Token": "token-to-strip",
        },
        body=body,
    )
    assert resp.status == 200, resp.body
    assert backend.read(bucket, "v2") == body


def _fetch(url: str, method: str = "GET", data: bytes | None = None) -> tuple[int, bytes]:
    # urllib would label a body as a form (moto then stores nothing): say what it is.
    headers = {"Content-Type": "application/octet-stream"} if data is not None else {}
    req = urllib.request.Request(url, method=method, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.parametrize("signature_version", [None, "s3v4"], ids=["sigv2", "sigv4"])
def test_presigned_urls_from_boto3(
    proxy: ProxyProcess, backend: Backend, bucket: str, signature_version: str | None
) -> None:
    client = boto3_client(proxy, signature_version=signature_version)
    put_url = client.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "pre signed+key"}, ExpiresIn=300
    )
    if signature_version is None:
        assert "AWSAccessKeyId=" in put_url and "Signature=" in put_url
    else:
        assert "X-Amz-Signature=" in put_url and "X-Amz-Security-Token=" in put_url
    body = os.urandom(2048)
    status, resp = _fetch(put_url, "PUT", body)
    assert status == 200, resp
    assert backend.read(bucket, "pre signed+key") == body
    get_url = client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "pre signed+key"}, ExpiresIn=300
    )
    status, got = _fetch(get_url)
    assert status == 200, got
    assert got == body
    # Response-overriding query parameters are not auth: they must survive the stripping.
    url = client.generate_presigned_url(
        "get_object",
        Params={
            "Bucket": bucket,
            "Key": "pre signed+key",
            "ResponseContentType": "text/x-presigned",
        },
    )
    with urllib.request.urlopen(url, timeout=30) as r:
        assert r.headers["Content-Type"] == "text/x-presigned"


def test_expired_presigned_url_is_still_forwarded(proxy: ProxyProcess, backend: Backend, bucket):
    """The proxy doesn't verify client signatures (documented trust model): expiry is the
    client's business, so an expired presigned URL is re-signed like any other request."""
    backend.direct.put_object(Bucket=bucket, Key="old", Body=b"old")
    client = boto3_client(proxy, signature_version="s3v4")
    url = client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "old"}, ExpiresIn=1
    )
    time.sleep(1.5)
    assert _fetch(url) == (200, b"old")


def test_presigned_url_from_aws_cli(proxy: ProxyProcess, backend: Backend, bucket: str) -> None:
    backend.direct.put_object(Bucket=bucket, Key="cli/pre signed", Body=b"from aws s3 presign")
    cli = AwsCli.for_target(proxy)
    url = cli.run("s3", "presign", f"s3://{bucket}/cli/pre signed", "--expires-in", "300")
    url = url.stdout.strip()
    assert url.startswith(proxy.endpoint)
    assert "Signature=" in url
    assert _fetch(url) == (200, b"from aws s3 presign")
