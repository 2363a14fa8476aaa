"""The proxy's own AWS credentials: the standard chain, refreshed before expiry.

aiobotocore's credential resolver walks the same chain as every AWS SDK: environment variables,
shared config/credentials files (``profile``), web identity (IRSA on EKS), SSO, container
credentials (ECS / EKS Pod Identity) and instance metadata (IMDSv2). Refreshable credentials
(web identity, container, IMDS, assume-role) are refreshed by aiobotocore ahead of expiry — an
advisory refresh 15 minutes before, a mandatory one 10 minutes before — under a lock, so a
burst of requests triggers one refresh. Nothing here logs a secret.
"""

from __future__ import annotations

from typing import Protocol

from botocore.credentials import ReadOnlyCredentials

from proxy.errors import CredentialsError

__all__ = ["ChainCredentials", "CredentialSource", "ReadOnlyCredentials", "StaticCredentials"]


class CredentialSource(Protocol):
    async def start(self) -> None:
        """Resolve credentials once; raise :class:`CredentialsError` if there are none."""

    async def get(self) -> ReadOnlyCredentials:
        """Current credentials (refreshing them first when they are about to expire)."""

    def now(self) -> ReadOnlyCredentials | None:
        """What :meth:`get` would return if that needs no wait (no refresh due), else None."""

    @property
    def resolved(self) -> bool: ...

    @property
    def method(self) -> str:
        """Where the credentials came from ("env", "assume-role-with-web-identity", ...)."""


class StaticCredentials:
    """Fixed credentials: the embedded local backend's dummy keys, and tests."""

    def __init__(self, access_key: str, secret_key: str, token: str | None = None) -> None:
        self._creds = ReadOnlyCredentials(access_key, secret_key, token)

    async def start(self) -> None:
        return None

    async def get(self) -> ReadOnlyCredentials:
        return self._creds

    def now(self) -> ReadOnlyCredentials | None:
        return self._creds

    @property
    def resolved(self) -> bool:
        return True

    @property
    def method(self) -> str:
        return "static"


class ChainCredentials:
    """The standard AWS credential chain via aiobotocore (optionally for a named profile)."""

    def __init__(self, profile: str | None = None) -> None:
        self._profile = profile
        self._creds: object | None = None
        #: Credentials that never refresh (environment, shared files), frozen once.
        self._fixed: ReadOnlyCredentials | None = None
        #: The refreshing credentials' last frozen copy (what they give until a refresh is due).
        self._last: ReadOnlyCredentials | None = None

    async def start(self) -> None:
        from aiobotocore.session import AioSession  # deferred: heavy import, not needed in tests

        self._fixed = self._last = None
        try:
            session = AioSession(profile=self._profile)
            creds = await session.get_credentials()
        except Exception as exc:  # botocore raises many types (ProfileNotFound, ...)
            raise CredentialsError(
                f"cannot resolve AWS credentials: {type(exc).__name__}: {exc}"
            ) from None
        if creds is None:
            raise CredentialsError(
                "no AWS credentials found (looked in the environment, shared config/credentials "
                "files, web identity, container and instance metadata)"
            )
        self._creds = creds
        frozen = await self.get()  # fail at start-up, not on the first request
        from aiobotocore.credentials import AioRefreshableCredentials

        if not isinstance(creds, AioRefreshableCredentials):
            self._fixed = frozen

    async def get(self) -> ReadOnlyCredentials:
        if self._fixed is not None:
            return self._fixed
        creds = self._creds
        if creds is None:
            raise CredentialsError("AWS credentials are not resolved yet")
        try:
            frozen: ReadOnlyCredentials = await creds.get_frozen_credentials()  # type: ignore[attr-defined]
        except Exception as exc:
            raise CredentialsError(
                f"cannot refresh AWS credentials: {type(exc).__name__}: {exc}"
            ) from None
        if not frozen.access_key or not frozen.secret_key:
            raise CredentialsError("AWS credentials resolved without an access key or secret")
        self._last = frozen
        return frozen

    def now(self) -> ReadOnlyCredentials | None:
        if self._fixed is not None:
            return self._fixed
        last, creds = self._last, self._creds
        if last is None or creds is None:
            return None
        # The same test get_frozen_credentials() makes before refreshing (botocore's advisory
        # window): while no refresh is due it returns the copy it returned last.
        refresh_needed = getattr(creds, "refresh_needed", None)
        if refresh_needed is None or refresh_needed():
            return None
        return last

    @property
    def resolved(self) -> bool:
        return self._creds is not None

    @property
    def method(self) -> str:
        return str(getattr(self._creds, "method", "unknown"))
