"""``upstream.endpoint: embedded``: an in-process, in-memory S3 (moto) on a free loopback port.

For trying the proxy without an AWS account (``config/local.yaml``). The backend enforces
SigV4: at start-up it creates one IAM user and access key (random, held only in this process)
and from then on accepts nothing else, so the proxy signs with that key and no credentials are
needed in the environment. moto comes from the optional ``local`` extra (``pip install
'format-proxy[local]'``). Everything stored is lost when the proxy stops.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.parse
import urllib.request

from proxy.errors import ConfigError, ProxyError
from proxy.relay.credentials import StaticCredentials

__all__ = ["EmbeddedS3", "create_bucket_body"]

_USER = "format-proxy-local"
_ALLOW_ALL = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)
# create_user, put_user_policy, create_access_key: the only calls moto lets through unsigned.
_SETUP_CALLS = 3
_SETUP_AUTHORIZATION = (
    "AWS4-HMAC-SHA256 Credential=setup/20240101/us-east-1/iam/aws4_request, "
    "SignedHeaders=host, Signature=0"
)
_KEY_TAGS = ("AccessKeyId", "SecretAccessKey")


class EmbeddedS3:
    """moto's ThreadedMotoServer on 127.0.0.1:<free port>, SigV4 enforced."""

    def __init__(self) -> None:
        self._server: object | None = None
        self.endpoint: str | None = None
        self.credentials: StaticCredentials | None = None

    def start(self) -> str:
        """Start the server and create its only key (blocking: run it in a thread)."""
        try:
            from moto import settings
            from moto.core.authorization import ActionAuthenticatorMixin
            from moto.server import ThreadedMotoServer
        except ImportError:
            raise ConfigError(
                "upstream.endpoint",
                "'embedded' needs moto: pip install 'format-proxy[local]'",
            ) from None
        # werkzeug logs every request at INFO on its own logger; the proxy already logs them.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        # moto authenticates every request after the first INITIAL_NO_AUTH_ACTION_COUNT (a
        # process-wide setting); those few create the user and key below.
        settings.INITIAL_NO_AUTH_ACTION_COUNT = _SETUP_CALLS
        ActionAuthenticatorMixin.request_count = 0
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        self._server = server
        self.endpoint = f"http://{host}:{port}"
        self.credentials = self._create_key(self.endpoint)
        return self.endpoint

    @staticmethod
    def _create_key(endpoint: str) -> StaticCredentials:
        """Three unauthenticated IAM calls (moto lets exactly these through): the user, its
        allow-all policy, its key. Plain HTTP, so no AWS profile or variable can interfere."""
        for action in (
            {"Action": "CreateUser", "UserName": _USER},
            {"Action": "PutUserPolicy", "UserName": _USER, "PolicyName": "all",
             "PolicyDocument": _ALLOW_ALL},
            {"Action": "CreateAccessKey", "UserName": _USER},
        ):  # fmt: skip
            body = urllib.parse.urlencode({**action, "Version": "2010-05-08"}).encode()
            request = urllib.request.Request(endpoint + "/", data=body, method="POST")
            request.add_header("Content-Type", "application/x-www-form-urlencoded")
            # moto routes a request by the service in the credential scope; it checks nothing
            request.add_header("Authorization", _SETUP_AUTHORIZATION)
            with urllib.request.urlopen(request, timeout=30) as response:
                reply = response.read()
        found = {tag: re.search(rf"<{tag}>([^<]+)</{tag}>".encode(), reply) for tag in _KEY_TAGS}
        if not all(found.values()):
            raise ProxyError(f"the embedded S3 gave no access key: {reply[:300]!r}")
        access_key, secret_key = (m.group(1).decode() for m in found.values() if m is not None)
        return StaticCredentials(access_key, secret_key)

    def stop(self) -> None:
        server = self._server
        if server is not None:
            server.stop()  # type: ignore[attr-defined]
            self._server = None


def create_bucket_body(region: str) -> bytes:
    """CreateBucket body: us-east-1 takes none, every other region needs its constraint."""
    if region == "us-east-1":
        return b""
    return (
        '<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<LocationConstraint>{region}</LocationConstraint></CreateBucketConfiguration>"
    ).encode()
