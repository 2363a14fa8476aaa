"""Real S3 clients pointed at the proxy: boto3 (both checksum modes), aws-cli, s3fs.

They sign with :data:`CLIENT_CREDENTIALS`, which the backends have never seen: a request only
succeeds because the proxy strips the client's auth and re-signs with its own credentials.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import boto3
import botocore.config

from tests.support.backends import REGION, VENV_BIN, Credentials, isolated_aws_env

#: Deliberately wrong client credentials (with a session token, so X-Amz-Security-Token is sent).
CLIENT_CREDENTIALS = Credentials(
    "AKIACLIENTNOTREAL0001",
    "client-secret-the-backend-never-saw/7Hq+Zz0Kp",
    session_token="IQoJb3JpZ2luX2VjEClientSessionTokenNeverLogged0123456789+/=",
)

ChecksumMode = Literal["default", "when_required"]
CHECKSUM_MODES: tuple[ChecksumMode, ...] = ("default", "when_required")


def _endpoint_of(target: Any) -> tuple[str, str | None]:
    """(endpoint URL, CA bundle path or None) of a ProxyProcess, Backend or URL string."""
    if isinstance(target, str):
        return target, None
    tls = getattr(target, "tls", None)
    return target.endpoint, (str(tls.ca) if tls else None)


def boto3_client(
    target: Any,
    *,
    checksum_mode: ChecksumMode = "default",
    credentials: Credentials = CLIENT_CREDENTIALS,
    addressing_style: str = "path",
    signature_version: str | None = None,
    total_max_attempts: int = 1,
    read_timeout: float = 60,
    region: str = REGION,
    **config: Any,
) -> Any:
    """A boto3 S3 client for the proxy (or any endpoint).

    ``checksum_mode="default"`` is boto3's out-of-the-box behaviour (CRC32 on every upload,
    response checksum validation); ``"when_required"`` sets both
    ``request_checksum_calculation`` and ``response_checksum_validation`` to ``when_required``.
    Retries are off by default (``total_max_attempts=1``) so that a test sees the first answer.
    """
    endpoint, ca = _endpoint_of(target)
    options: dict[str, Any] = {
        "s3": {"addressing_style": addressing_style},
        "retries": {"total_max_attempts": total_max_attempts, "mode": "standard"},
        "read_timeout": read_timeout,
        "connect_timeout": 5,
    }
    if checksum_mode == "when_required":
        options["request_checksum_calculation"] = "when_required"
        options["response_checksum_validation"] = "when_required"
    if signature_version:
        options["signature_version"] = signature_version
    options.update(config)
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
        aws_session_token=credentials.session_token,
        verify=ca if ca else None,
        config=botocore.config.Config(**options),
    )


@dataclass
class AwsCli:
    """Runs the real ``aws`` command (aws-cli from the venv) against an endpoint.

    The endpoint is given the way apps get it in a pod: ``AWS_ENDPOINT_URL_S3``.
    """

    endpoint: str
    credentials: Credentials = CLIENT_CREDENTIALS
    ca_bundle: str | None = None
    cwd: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_target(cls, target: Any, **kwargs: Any) -> AwsCli:
        endpoint, ca = _endpoint_of(target)
        return cls(endpoint=endpoint, ca_bundle=ca, **kwargs)

    def env(self) -> dict[str, str]:
        env = isolated_aws_env()
        env.update(self.credentials.env())
        env["AWS_ENDPOINT_URL_S3"] = self.endpoint
        env["AWS_MAX_ATTEMPTS"] = "1"
        env["AWS_PAGER"] = ""
        if self.ca_bundle:
            env["AWS_CA_BUNDLE"] = self.ca_bundle
        env.update(self.extra_env)
        return env

    def run(
        self, *args: str, check: bool = True, input: bytes | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """``aws ARGS``; with ``check`` a non-zero exit raises with the command's stderr."""
        proc = subprocess.run(
            [str(VENV_BIN / "aws"), *args],
            env=self.env(),
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input.decode() if input is not None else None,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"aws {' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout}\n"
                f"stderr:\n{proc.stderr}"
            )
        return proc


def s3fs_filesystem(
    target: Any, *, credentials: Credentials = CLIENT_CREDENTIALS, **kwargs: Any
) -> Any:
    """An ``s3fs.S3FileSystem`` for the proxy, uncached so every call reaches the proxy."""
    import s3fs

    endpoint, ca = _endpoint_of(target)
    client_kwargs: dict[str, Any] = {"region_name": REGION}
    if ca:
        client_kwargs["verify"] = ca
    return s3fs.S3FileSystem(
        key=credentials.access_key,
        secret=credentials.secret_key,
        token=credentials.session_token,
        endpoint_url=endpoint,
        client_kwargs=client_kwargs,
        skip_instance_cache=True,
        use_listings_cache=False,
        **kwargs,
    )


def sha256_of_file(path: os.PathLike[str] | str) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
