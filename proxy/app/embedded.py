"""``upstream.endpoint: embedded``: an in-process, in-memory S3 (moto) on a free loopback port.

For trying the proxy without an AWS account (``config/local.yaml``). It uses fixed dummy
credentials that only this local backend accepts, so no credentials are needed in the
environment. moto comes from the optional ``local`` extra (``pip install 'format-proxy[local]'``).
Everything stored is lost when the proxy stops.
"""

from __future__ import annotations

import logging

from proxy.errors import ConfigError
from proxy.relay.credentials import StaticCredentials

__all__ = ["LOCAL_ACCESS_KEY", "LOCAL_SECRET_KEY", "EmbeddedS3", "local_credentials"]

LOCAL_ACCESS_KEY = "format-proxy-local"
LOCAL_SECRET_KEY = "format-proxy-local-secret"


def local_credentials() -> StaticCredentials:
    return StaticCredentials(LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY)


class EmbeddedS3:
    """moto's ThreadedMotoServer on 127.0.0.1:<free port>."""

    def __init__(self) -> None:
        self._server: object | None = None
        self.endpoint: str | None = None

    def start(self) -> str:
        try:
            from moto.server import ThreadedMotoServer
        except ImportError:
            raise ConfigError(
                "upstream.endpoint",
                "'embedded' needs moto: pip install 'format-proxy[local]'",
            ) from None
        # werkzeug logs every request at INFO on its own logger; the proxy already logs them.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        self._server = server
        self.endpoint = f"http://{host}:{port}"
        return self.endpoint

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
