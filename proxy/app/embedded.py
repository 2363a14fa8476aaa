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

from proxy.errors import ConfigError
from proxy.relay.credentials import StaticCredentials

__all__ = ["EmbeddedS3", "create_bucket_body"]

_USER = "format-proxy-local"
_ALLOW_ALL = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)
# create_user, put_user_policy, create_access_key: the only calls moto lets through unsigned.
_SETUP_CALLS = 3


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
        import boto3  # a dependency of moto
        from botocore.config import Config

        iam = boto3.session.Session().client(
            "iam",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="unsigned-setup",
            aws_secret_access_key="unsigned-setup",
            config=Config(retries={"total_max_attempts": 1}),
        )
        iam.create_user(UserName=_USER)
        iam.put_user_policy(UserName=_USER, PolicyName="all", PolicyDocument=_ALLOW_ALL)
        key = iam.create_access_key(UserName=_USER)["AccessKey"]
        return StaticCredentials(key["AccessKeyId"], key["SecretAccessKey"])

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
