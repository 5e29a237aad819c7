"""Secret Manager resource names in the environment, replaced by their payloads
(``resolve_secrets``): the I/O half of ``shared.config``. The client library is imported
only when such a value exists (it takes ~0.5 s to import)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from shared.config.envvar import ConfigError

__all__ = ["SECRET_NAME_RE", "SecretClient", "default_secret_client", "resolve_secrets"]

SECRET_NAME_RE = re.compile(r"^projects/[^/]+/secrets/[^/]+/versions/[^/]+$")


class SecretClient(Protocol):
    """The slice of ``SecretManagerServiceClient`` we use (a fake in tests)."""

    def access_secret_version(self, *, name: str) -> Any: ...


def default_secret_client() -> SecretClient:
    # Imported here: the library takes ~0.5 s to import and most instances never need it.
    from google.cloud import secretmanager

    client: SecretClient = secretmanager.SecretManagerServiceClient()
    return client


def resolve_secrets(
    env: Mapping[str, str], client_factory: Callable[[], SecretClient] = default_secret_client
) -> dict[str, str]:
    """Replace Secret Manager resource names with their payloads; the client is made once."""
    resolved = dict(env)
    client: SecretClient | None = None
    for key, value in env.items():
        if not SECRET_NAME_RE.match(value.strip()):
            continue
        client = client or client_factory()
        try:
            response = client.access_secret_version(name=value.strip())
            resolved[key] = response.payload.data.decode("utf-8")
        except Exception as exc:  # any client failure is a start-up config error
            raise ConfigError(f"{key}: could not read secret {value.strip()!r}: {exc}") from exc
    return resolved
