"""Where the publisher sends (broker URL, TLS, credentials) and the topics it names."""

from __future__ import annotations

import os
import re
import ssl
from dataclasses import dataclass
from pathlib import Path  # noqa: TC003 - pydantic resolves the field types at runtime
from typing import Final, Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.errors import ConfigError

__all__ = ["DEFAULT_PORTS", "BrokerEndpoint", "PublisherSettings", "Topics"]

DEFAULT_PORTS: Final = {"mqtt": 1883, "mqtts": 8883}
# One topic level: no separators, wildcards or NUL, so an id can never widen a subscription.
_TOPIC_LEVEL: Final = r"^[^/+#\x00]+$"
_TOPIC_LEVEL_RE: Final = re.compile(_TOPIC_LEVEL)


@dataclass(frozen=True, slots=True)
class BrokerEndpoint:
    """The broker's host and port, and whether the connection is TLS (``mqtts://``)."""

    host: str
    port: int
    tls: bool

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def parse_broker_url(url: str) -> BrokerEndpoint:
    """Parse ``mqtt://host[:port]`` or ``mqtts://host[:port]``; ValueError says what to write."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS:
        raise ValueError(f"broker_url {url!r} must start with mqtt:// or mqtts://")
    if parts.username is not None or parts.password is not None:
        # A password in a URL ends up in logs and process listings.
        raise ValueError(
            "broker_url must not carry credentials: set username, and the password in "
            "password_file or password_env"
        )
    if parts.path not in {"", "/"} or parts.query or parts.fragment:
        raise ValueError(f"broker_url {url!r} takes no path or query: write mqtts://host:port")
    if not parts.hostname:
        raise ValueError(f"broker_url {url!r} has no host: write mqtts://host:port")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"broker_url {url!r} has an invalid port: {exc}") from exc
    return BrokerEndpoint(
        host=parts.hostname,
        port=port if port is not None else DEFAULT_PORTS[parts.scheme],
        tls=parts.scheme == "mqtts",
    )


class PublisherSettings(BaseModel):
    """How the publisher reaches the broker and names its topics (frozen, checked at load)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    broker_url: str
    """``mqtt://host:port`` or ``mqtts://host:port`` (TLS, the server certificate verified)."""
    hub_id: str = Field(pattern=_TOPIC_LEVEL)
    topic_prefix: str = ""
    """Put before ``hubs/...``; a trailing ``/`` is added when missing."""
    client_id: str | None = None
    """Defaults to ``vitalbridge-{hub_id}``."""
    protocol: Literal["5", "3.1.1"] = "5"
    keepalive_s: int = Field(default=30, ge=5, le=65535)
    ca_file: Path | None = None
    """PEM bundle of the CAs that may sign the broker's certificate; the system CAs when unset."""
    client_cert: Path | None = None
    client_key: Path | None = None
    username: str | None = None
    password_file: Path | None = None
    """A file holding only the password (a trailing newline is ignored); read at each connect."""
    password_env: str | None = None
    """The name of an environment variable holding the password; read at each connect."""
    window: int = Field(default=20, ge=1, le=1000)
    """QoS 1 publishes in flight at once; 20 fits a default broker's Receive Maximum."""
    backoff_base_s: float = Field(default=1.0, gt=0)
    backoff_cap_s: float = Field(default=60.0, gt=0)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    puback_timeout_s: float = Field(default=30.0, gt=0)
    """A PUBACK later than this means a dead connection: reconnect and send again."""
    refusal_alarm_rounds: int = Field(default=5, ge=1)
    """Back-to-back rounds of refused PUBACKs for one kind before its alarm is raised."""
    unreachable_alarm_attempts: int = Field(default=5, ge=1)
    """Failed connects in a row before the broker_unreachable alarm is raised."""
    schema_version: str = "1.0"
    """The user property for a payload that does not name its own ``schema_version``."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        endpoint = parse_broker_url(self.broker_url)
        if not endpoint.tls and (self.ca_file or self.client_cert or self.client_key):
            raise ValueError(
                "ca_file/client_cert/client_key are set but broker_url is mqtt:// (no TLS): "
                "use mqtts:// or remove them"
            )
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("set client_cert and client_key together (mutual TLS needs both)")
        if self.password_file is not None and self.password_env is not None:
            raise ValueError("set password_file or password_env, not both")
        has_password = self.password_file is not None or self.password_env is not None
        if has_password and self.username is None:
            raise ValueError("a password needs a username: set username")
        if self.topic_prefix and any(c in self.topic_prefix for c in "+#\x00"):
            raise ValueError(f"topic_prefix {self.topic_prefix!r} must not contain + # or NUL")
        if self.backoff_cap_s < self.backoff_base_s:
            raise ValueError("backoff_cap_s must be at least backoff_base_s")
        return self

    @property
    def endpoint(self) -> BrokerEndpoint:
        """The parsed broker URL."""
        return parse_broker_url(self.broker_url)

    @property
    def effective_client_id(self) -> str:
        """The MQTT client id: the configured one or ``vitalbridge-{hub_id}``."""
        return self.client_id or f"vitalbridge-{self.hub_id}"

    @property
    def topics(self) -> Topics:
        """The topic names for this hub."""
        prefix = self.topic_prefix
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        return Topics(prefix=prefix, hub_id=self.hub_id)

    def read_password(self) -> str | None:
        """Read the password from password_file or password_env (blocking); never logged."""
        if self.password_file is not None:
            try:
                text = self.password_file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(
                    f"cannot read password_file {self.password_file}: {exc.strerror}; create it "
                    "with the broker password, readable by the gateway user"
                ) from exc
            return text.rstrip("\r\n")
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ConfigError(
                    f"password_env names {self.password_env}, which is not set: export it with "
                    "the broker password"
                )
            return value
        return None

    def tls_context(self) -> ssl.SSLContext | None:
        """Build the TLS context for mqtts:// (blocking file reads), with the client cert."""
        if not self.endpoint.tls:
            return None
        try:
            # create_default_context verifies the chain and the host name; the system CAs are
            # the trust store unless a private PKI's ca_file replaces them.
            context = ssl.create_default_context(
                cafile=str(self.ca_file) if self.ca_file is not None else None
            )
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"cannot load ca_file {self.ca_file}: {exc}; point ca_file at a PEM file of CA "
                "certificates"
            ) from exc
        if self.client_cert is not None and self.client_key is not None:
            try:
                context.load_cert_chain(str(self.client_cert), str(self.client_key))
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(
                    f"cannot load client_cert {self.client_cert} with client_key "
                    f"{self.client_key}: {exc}; both must be PEM and the key must match the cert"
                ) from exc
        return context


@dataclass(frozen=True, slots=True)
class Topics:
    """The hub's topic names: ``{prefix}hubs/{hub_id}/...``."""

    prefix: str
    hub_id: str

    @property
    def hub(self) -> str:
        """The hub's root topic."""
        return f"{self.prefix}hubs/{self.hub_id}"

    @property
    def status(self) -> str:
        """Retained hub status; the last will says offline."""
        return f"{self.hub}/status"

    def reading(self, kind: str) -> str:
        """Where readings of this kind go; ValueError for a kind that is not one topic level."""
        if not _TOPIC_LEVEL_RE.match(kind):
            raise ValueError(f"reading kind {kind!r} is not a single MQTT topic level")
        return f"{self.hub}/readings/{kind}"

    def device(self, device_id: str) -> str:
        """Return where a device's retained state goes; ValueError for an id not one topic level."""
        if not _TOPIC_LEVEL_RE.match(device_id):
            raise ValueError(
                f"device id {device_id!r} is not a single MQTT topic level: it must be non-empty "
                "and have no '/', '+', '#' or NUL"
            )
        return f"{self.hub}/devices/{device_id}"
