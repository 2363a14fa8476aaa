"""The proxy's own credentials: the standard chain via aiobotocore, refreshed before expiry."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from aiobotocore.credentials import AioRefreshableCredentials

from proxy.errors import CredentialsError
from proxy.relay.credentials import ChainCredentials, StaticCredentials


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return tmp_path


async def test_environment_credentials(no_aws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "env-token")
    creds = ChainCredentials()
    assert not creds.resolved
    await creds.start()
    frozen = await creds.get()
    assert (frozen.access_key, frozen.secret_key, frozen.token) == (
        "AKIDENV",
        "env-secret",
        "env-token",
    )
    assert creds.method == "env" and creds.resolved


async def test_profile_from_shared_files(no_aws: Path) -> None:
    (no_aws / "credentials").write_text(
        "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = d\n"
        "[team]\naws_access_key_id = AKIDTEAM\naws_secret_access_key = t\n"
    )
    creds = ChainCredentials(profile="team")
    await creds.start()
    assert (await creds.get()).access_key == "AKIDTEAM"
    default = ChainCredentials()
    await default.start()
    assert (await default.get()).access_key == "AKIDDEFAULT"


async def test_unknown_profile_and_no_credentials_are_credentials_errors(no_aws: Path) -> None:
    with pytest.raises(CredentialsError, match="ProfileNotFound"):
        await ChainCredentials(profile="nope").start()
    with pytest.raises(CredentialsError, match="no AWS credentials found"):
        await ChainCredentials().start()
    with pytest.raises(CredentialsError, match="not resolved"):
        await ChainCredentials().get()


async def test_refreshable_credentials_are_refreshed_before_expiry() -> None:
    calls = 0
    now = dt.datetime.now(dt.UTC)

    async def refresh() -> dict[str, str]:
        nonlocal calls
        calls += 1
        # First credentials expire in 5 minutes (inside the mandatory refresh window), the
        # refreshed ones in an hour.
        ttl = dt.timedelta(minutes=5) if calls == 1 else dt.timedelta(hours=1)
        return {
            "access_key": f"AKID{calls}",
            "secret_key": f"secret{calls}",
            "token": f"token{calls}",
            "expiry_time": (now + ttl).isoformat(),
        }

    refreshable = AioRefreshableCredentials.create_from_metadata(
        await refresh(), refresh_using=refresh, method="assume-role-with-web-identity"
    )
    creds = ChainCredentials()
    creds._creds = refreshable  # what start() stores after resolving the chain
    first = await creds.get()
    assert first.access_key == "AKID2" and first.token == "token2"  # refreshed on use
    again = await creds.get()
    assert again.access_key == "AKID2" and calls == 2  # no refresh while fresh
    assert creds.method == "assume-role-with-web-identity"


async def test_now_is_what_get_gives_while_no_refresh_is_due(
    no_aws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = dt.datetime.now(dt.UTC)
    ttl = {"left": dt.timedelta(hours=1)}

    async def refresh() -> dict[str, str]:
        return {
            "access_key": "AKIDROLE",
            "secret_key": "role-secret",
            "token": "role-token",
            "expiry_time": (now + ttl["left"]).isoformat(),
        }

    refreshable = AioRefreshableCredentials.create_from_metadata(
        await refresh(), refresh_using=refresh, method="assume-role-with-web-identity"
    )
    creds = ChainCredentials()
    creds._creds = refreshable  # what start() stores after resolving the chain
    assert creds.now() is None  # nothing fetched yet
    fetched = await creds.get()
    assert creds.now() == fetched and fetched.access_key == "AKIDROLE"
    # Inside the advisory refresh window get() would refresh: now() does not answer.
    refreshable._expiry_time = now + dt.timedelta(minutes=14)
    assert creds.now() is None

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    chain = ChainCredentials()
    assert chain.now() is None  # not resolved
    await chain.start()
    assert chain.now() == await chain.get() and chain.now() is not None
    static = StaticCredentials("a", "b")
    assert static.now() == await static.get()


async def test_static_credentials() -> None:
    creds = StaticCredentials("a", "b")
    await creds.start()
    assert creds.resolved and (await creds.get()).secret_key == "b"
