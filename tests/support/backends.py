"""Real S3 backends on loopback: ``moto_server`` with SigV4 enforced, and SeaweedFS.

Both verify SigV4 signatures; neither verifies payload hashes or checksums, so tests read the
stored bytes back through :attr:`Backend.direct` (a boto3 client that bypasses the proxy).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions

from tests.support.ports import LOOPBACK, free_port, free_port_with_grpc, wait_for_port
from tests.support.processes import ManagedProcess

VENV_BIN = Path(sys.executable).parent
REGION = "us-east-1"


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    session_token: str | None = None

    def env(self) -> dict[str, str]:
        """The standard AWS environment variables for these credentials."""
        env = {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}
        if self.session_token:
            env["AWS_SESSION_TOKEN"] = self.session_token
        return env

    def secrets(self) -> list[str]:
        """The values that must never show up in a log line."""
        return [s for s in (self.secret_key, self.session_token) if s]


def isolated_aws_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """``os.environ`` without any AWS setting that could leak the developer's own credentials.

    Shared config/credential files point at nothing and instance metadata is disabled, so the
    only credentials a process sees are the ones a test puts in its environment.
    """
    env = {
        k: v
        for k, v in (base if base is not None else os.environ).items()
        if not k.startswith(("AWS_", "FORMAT_PROXY_"))
    }
    env.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
    )
    return env


def direct_client(
    endpoint: str,
    creds: Credentials,
    region: str = REGION,
    *,
    verify: str | None = None,
    **config: Any,
) -> Any:
    """A plain boto3 S3 client for ``endpoint`` (path style, no optional checksums, 2 attempts);
    ``verify`` is the CA bundle of an HTTPS endpoint."""
    options: dict[str, Any] = {
        "s3": {"addressing_style": "path"},
        "request_checksum_calculation": "when_required",
        "response_checksum_validation": "when_required",
        "retries": {"total_max_attempts": 3, "mode": "standard"},
        "connect_timeout": 5,
        "read_timeout": 60,
    }
    options.update(config)
    cfg = botocore.config.Config(**options)
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
        aws_session_token=creds.session_token,
        config=cfg,
        verify=verify,
    )


_bucket_counter = itertools.count(1)


@dataclass
class Backend:
    """A running S3 server the proxy forwards to."""

    name: str
    endpoint: str
    credentials: Credentials
    process: ManagedProcess
    region: str = REGION
    #: Whether the backend keeps object versions when versioning is enabled on a bucket.
    supports_versioning: bool = True
    #: CA bundle to trust for an HTTPS endpoint.
    ca_bundle: str | None = None
    _direct: Any = field(default=None, repr=False)

    @property
    def direct(self) -> Any:
        """boto3 S3 client talking straight to the backend (bypassing any proxy)."""
        if self._direct is None:
            self._direct = direct_client(
                self.endpoint, self.credentials, self.region, verify=self.ca_bundle
            )
        return self._direct

    def new_bucket(self, prefix: str = "e2e", *, versioned: bool = False) -> str:
        """Create a fresh, uniquely named bucket and wait until it accepts writes."""
        name = f"{prefix}-{next(_bucket_counter)}-{uuid.uuid4().hex[:8]}".lower()[:63]
        self.direct.create_bucket(Bucket=name)
        if versioned:
            self.direct.put_bucket_versioning(
                Bucket=name, VersioningConfiguration={"Status": "Enabled"}
            )
        self._wait_writable(name)
        return name

    def _wait_writable(self, bucket: str, timeout: float = 30.0) -> None:
        # SeaweedFS grows volumes for a new bucket lazily: the first PUT may fail for a moment.
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.direct.put_object(Bucket=bucket, Key=".probe", Body=b"")
                self.direct.delete_object(Bucket=bucket, Key=".probe")
                return
            except botocore.exceptions.ClientError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    # --- reading what is really stored ---------------------------------------------------

    def read(self, bucket: str, key: str, **kwargs: Any) -> bytes:
        return self.direct.get_object(Bucket=bucket, Key=key, **kwargs)["Body"].read()

    def sha256(self, bucket: str, key: str) -> str:
        h = hashlib.sha256()
        body = self.direct.get_object(Bucket=bucket, Key=key)["Body"]
        for chunk in iter(lambda: body.read(1 << 20), b""):
            h.update(chunk)
        return h.hexdigest()

    def exists(self, bucket: str, key: str) -> bool:
        try:
            self.direct.head_object(Bucket=bucket, Key=key)
        except botocore.exceptions.ClientError as exc:
            if exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
                return False
            raise
        return True

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every key stored in ``bucket`` (as the backend itself reports it)."""
        out: list[str] = []
        for page in self.direct.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix
        ):
            out.extend(obj["Key"] for obj in page.get("Contents", []))
        return out

    def stop(self) -> None:
        self.process.stop(grace=3.0)


# --- moto ---------------------------------------------------------------------------------

_ADMIN_POLICY = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)
# create_user, put_user_policy, create_access_key: the only unauthenticated calls moto allows.
_MOTO_NO_AUTH_CALLS = 3


def start_moto(log_dir: Path, *, name: str = "moto") -> Backend:
    """``moto_server`` on a free port with SigV4 enforced for everything after set-up.

    moto lets the first ``INITIAL_NO_AUTH_ACTION_COUNT`` requests through unauthenticated; we
    spend exactly those on creating an IAM user with an admin policy and an access key. From then
    on only that key works (wrong keys get ``InvalidAccessKeyId`` / ``SignatureDoesNotMatch``).
    """
    port = free_port()
    env = isolated_aws_env()
    env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(_MOTO_NO_AUTH_CALLS)
    proc = ManagedProcess(
        name,
        [str(VENV_BIN / "moto_server"), "-H", LOOPBACK, "-p", str(port)],
        log_dir,
        env=env,
    )
    endpoint = f"http://{LOOPBACK}:{port}"
    # A TCP connect doesn't count as an action; any HTTP request would.
    proc.wait_until(lambda: wait_for_port(port), timeout=30, what="listening")
    iam = boto3.session.Session().client(
        "iam",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="bootstrap",
        aws_secret_access_key="bootstrap",
        config=botocore.config.Config(retries={"total_max_attempts": 1}),
    )
    iam.create_user(UserName="format-proxy")
    iam.put_user_policy(UserName="format-proxy", PolicyName="admin", PolicyDocument=_ADMIN_POLICY)
    key = iam.create_access_key(UserName="format-proxy")["AccessKey"]
    creds = Credentials(key["AccessKeyId"], key["SecretAccessKey"])
    backend = Backend(name=name, endpoint=endpoint, credentials=creds, process=proc)
    backend.direct.list_buckets()  # the key works
    return backend


# --- SeaweedFS ----------------------------------------------------------------------------

_ALREADY_EXISTS = ("BucketAlreadyOwnedByYou", "BucketAlreadyExists")
SEAWEED_CREDENTIALS = Credentials("SEAWEEDADMINKEY00001", "seaweed-admin-secret/+=9f3k2Lq")


def start_seaweedfs(
    data_dir: Path,
    log_dir: Path,
    *,
    name: str = "seaweedfs",
    timeout: float = 90.0,
    tls: tuple[Path, Path, Path] | None = None,
) -> Backend:
    """``weed server -filer -s3`` on free ports, ready once a real PUT has succeeded.

    Deviations from a plain `weed server` start, both so that many small test buckets work
    whatever the disk size: volumes are capped at 64 MiB (``-master.volumeSizeLimitMB``) with an
    explicit ``-volume.max``, and a new bucket grows one volume instead of seven
    (``WEED_MASTER_VOLUME_GROWTH_COPY_1``); with the defaults, a machine with little free disk runs
    out of volumes after a bucket or two.

    ``tls=(cert, key, ca)`` serves S3 over HTTPS only (``-s3.cert.file``/``-s3.key.file``); the
    readiness probe and ``direct`` trust ``ca``.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    creds = SEAWEED_CREDENTIALS
    identities = {
        "identities": [
            {
                "name": "format-proxy",
                "credentials": [{"accessKey": creds.access_key, "secretKey": creds.secret_key}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }
        ]
    }
    ids_path = data_dir / "identities.json"
    ids_path.write_text(json.dumps(identities))
    master, volume, filer, s3 = (free_port_with_grpc() for _ in range(4))
    argv = [
        str(VENV_BIN / "weed"),
        # glog's files would otherwise pile up in /tmp, one set per instance.
        f"-logdir={log_dir}",
        "server",
        "-filer",
        "-s3",
        "-ip",
        LOOPBACK,
        "-ip.bind",
        LOOPBACK,
        f"-dir={data_dir}",
        f"-master.port={master}",
        f"-volume.port={volume}",
        f"-filer.port={filer}",
        f"-s3.port={s3}",
        # Virtual-hosted requests (Host: <bucket>.localhost) name their bucket in the host.
        "-s3.domainName=localhost",
        "-volume.max=400",
        "-master.volumeSizeLimitMB=64",
        # Extra listeners on fixed default ports (8181, 9101) would collide between two
        # instances (a test run and a benchmark, two engineers): off.
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={ids_path}",
    ]
    if tls is not None:
        argv += [f"-s3.cert.file={tls[0]}", f"-s3.key.file={tls[1]}"]
    env = isolated_aws_env()
    env["WEED_MASTER_VOLUME_GROWTH_COPY_1"] = "1"
    proc = ManagedProcess(name, argv, log_dir, env=env)
    scheme = "https" if tls is not None else "http"
    endpoint = f"{scheme}://{LOOPBACK}:{s3}"
    verify = str(tls[2]) if tls is not None else None
    backend = Backend(
        name=name, endpoint=endpoint, credentials=creds, process=proc, ca_bundle=verify
    )
    probe = direct_client(
        endpoint,
        creds,
        retries={"total_max_attempts": 1},
        connect_timeout=1,
        read_timeout=5,
        verify=verify,
    )

    def can_store() -> bool:
        # It answers HTTP well before it can store anything: only a real PUT proves readiness.
        try:
            probe.create_bucket(Bucket="readiness-probe")
        except botocore.exceptions.ClientError as exc:
            if exc.response["Error"]["Code"] not in _ALREADY_EXISTS:
                raise
        probe.put_object(Bucket="readiness-probe", Key="probe", Body=b"ready")
        return probe.get_object(Bucket="readiness-probe", Key="probe")["Body"].read() == b"ready"

    try:
        proc.wait_until(can_store, timeout=timeout, what="storing objects", interval=0.25)
    except BaseException:
        proc.stop(grace=1.0)
        raise
    return backend
