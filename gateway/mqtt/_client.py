"""aiomqtt 2.x's client with what it drops: PUBACK reason codes and early-closing connects.

aiomqtt 2.5's ``publish`` sets an event when paho reports the PUBACK and throws its reason code
away, so an MQTT 5 "not authorised" looks like success; and ``__aenter__`` only fails on a
CONNACK, so a broker that closes the socket first (a TLS alert sent after the handshake, as
when it wants a client certificate) costs the whole timeout and gives no reason. This subclass
overrides the two paho callbacks aiomqtt registers (``_on_publish``, ``_on_disconnect``) and
publishes through the paho client (``_client``). tests/test_publisher.py has a canary for these
private names, so an aiomqtt upgrade that moves them fails there and not in a kitchen.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import ssl
from typing import TYPE_CHECKING, Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.reasoncodes import ReasonCode

from gateway.errors import PublishError

if TYPE_CHECKING:
    from collections.abc import Callable

    from paho.mqtt.properties import Properties

    from gateway.mqtt.settings import BrokerEndpoint

__all__ = ["BrokerClient", "BrokerConnectError", "ConnectFailure", "classify_connect_error"]

# MQTT 5 CONNACK reason codes (MQTT 5.0, 3.2.2.2) and MQTT 3.1.1 return codes (3.2.2.3) that
# mean "your credentials": bad user name or password, not authorised.
_CREDENTIAL_CODES_V5 = frozenset({0x86, 0x87, 0x8C})
_CREDENTIAL_CODES_V3 = frozenset({4, 5})


class ConnectFailure(enum.StrEnum):
    """Why a connect failed; the config-class ones will not fix themselves."""

    UNREACHABLE = "unreachable"
    TLS_UNTRUSTED = "tls_untrusted"
    TLS_FAILED = "tls_failed"
    CLIENT_CERTIFICATE = "client_certificate"
    CREDENTIALS = "credentials"
    REFUSED = "refused"
    CONFIG = "config"

    @property
    def is_configuration(self) -> bool:
        """True when only a change of certificate, password or config can fix it."""
        return self in {
            ConnectFailure.TLS_UNTRUSTED,
            ConnectFailure.CLIENT_CERTIFICATE,
            ConnectFailure.CREDENTIALS,
            ConnectFailure.CONFIG,
        }


class BrokerConnectError(PublishError):
    """A connect to the broker failed; ``failure`` says why, the message what to do."""

    def __init__(self, failure: ConnectFailure, broker: str, message: str) -> None:
        self.failure = failure
        self.broker = broker
        super().__init__(f"{broker}: {message}")


class _LastError(logging.Handler):
    """Keeps the last warning or error paho logged: the only place a late TLS alert shows up."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.last: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.last = record.getMessage()


def _transport_logger(handler: logging.Handler) -> logging.Logger:
    # A logger outside the logging tree (not from getLogger): one per connection, collected with
    # it, and paho's chatter does not reach the root logger; our own events report the errors.
    logger = logging.Logger("vitalbridge.mqtt.transport", logging.WARNING)  # noqa: LOG001 - see above
    logger.addHandler(handler)
    return logger


class _ClosingSSLSocket(ssl.SSLSocket):
    """An SSL socket that closes itself when its handshake fails.

    paho wraps the TCP socket and handshakes, and on failure (an untrusted broker certificate)
    drops the socket without closing it: a file descriptor leaked per retry until the garbage
    collector finds it.
    """

    def do_handshake(self, block: bool = False) -> None:
        """Handshake; close the socket if it fails."""
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise


class BrokerClient(aiomqtt.Client):
    """An aiomqtt client whose QoS 1 publish returns the PUBACK reason code."""

    def __init__(
        self,
        hostname: str,
        port: int,
        *,
        tls_context: ssl.SSLContext | None = None,
        **kwargs: Any,  # noqa: ANN401 - aiomqtt's own keywords, passed through
    ) -> None:
        self.transport_errors = _LastError()
        if tls_context is not None:
            tls_context.sslsocket_class = _ClosingSSLSocket
        super().__init__(
            hostname,
            port,
            logger=_transport_logger(self.transport_errors),
            tls_context=tls_context,
            **kwargs,
        )
        # paho's TCP connect timeout, which aiomqtt leaves at paho's 5 s default.
        self._client.connect_timeout = self.timeout
        self._pubacks: dict[int, asyncio.Future[ReasonCode]] = {}
        self.on_puback: Callable[[int, ReasonCode], None] | None = None
        """Called (on the loop) with the message id and reason code of each PUBACK that no
        `publish_qos1` awaits: the PUBACKs of `publish_qos1_nowait`."""

    async def publish_qos1(
        self,
        topic: str,
        payload: bytes,
        *,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> ReasonCode:
        """Publish at QoS 1 and return the PUBACK's reason code (no timeout: the caller's)."""
        info = self._client.publish(topic, payload, 1, retain, properties)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
        # The PUBACK is read by a loop callback, so it cannot arrive before this line runs.
        acked: asyncio.Future[ReasonCode] = asyncio.get_running_loop().create_future()
        self._pubacks[info.mid] = acked
        try:
            return await acked
        finally:
            self._pubacks.pop(info.mid, None)

    def publish_qos1_nowait(
        self, topic: str, payload: bytes, *, properties: Properties | None = None
    ) -> int:
        """Send a QoS 1 PUBLISH and return its message id; its PUBACK goes to `on_puback`.

        No task or future per message: a publisher with many in flight keeps its own book of
        message ids (and of how long each has waited).
        """
        info = self._client.publish(topic, payload, 1, False, properties)  # noqa: FBT003 - paho's positional retain
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
        return info.mid

    def _on_publish(
        self,
        client: paho.Client,
        userdata: Any,  # noqa: ANN401 - paho's callback signature
        mid: int,
        reason_code: ReasonCode,
        properties: Properties,
    ) -> None:
        acked = self._pubacks.pop(mid, None)
        if acked is not None:
            if not acked.done():
                acked.set_result(reason_code)
            return
        if self.on_puback is not None:
            self.on_puback(mid, reason_code)
            return
        super()._on_publish(client, userdata, mid, reason_code, properties)

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,  # noqa: ANN401 - paho's callback signature
        flags: paho.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None = None,
    ) -> None:
        if not self._connected.done():
            detail = self.transport_errors.last or str(reason_code)
            self._connected.set_exception(
                aiomqtt.MqttError(f"the broker closed the connection before CONNACK: {detail}")
            )
            return
        super()._on_disconnect(client, userdata, flags, reason_code, properties)


def _ssl_cause(exc: BaseException) -> ssl.SSLError | None:
    # aiomqtt raises MqttError(str(exc)) from None: the SSL error is still in __context__.
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def classify_connect_error(
    exc: aiomqtt.MqttError,
    endpoint: BrokerEndpoint,
    *,
    has_client_cert: bool,
    username: str | None,
) -> BrokerConnectError:
    """Turn aiomqtt's connect error into a BrokerConnectError whose message says what to do."""
    broker = str(endpoint)
    if isinstance(exc, aiomqtt.MqttCodeError) and exc.rc is not None:
        # paho 2 maps MQTT 3.1.1 return codes to MQTT 5 reason codes; a bare int is 3.1.1's.
        if isinstance(exc.rc, ReasonCode):
            credentials = exc.rc.value in _CREDENTIAL_CODES_V5
        else:
            credentials = exc.rc in _CREDENTIAL_CODES_V3
        if credentials:
            who = f"username {username!r}" if username else "no username (anonymous)"
            advice = (
                "check username and the password in password_file/password_env"
                if username
                else "the broker wants credentials: set username and password_file or password_env"
            )
            return BrokerConnectError(
                ConnectFailure.CREDENTIALS,
                broker,
                f"the broker refused the credentials ({who}: {exc}); {advice}",
            )
        return BrokerConnectError(
            ConnectFailure.REFUSED,
            broker,
            f"the broker refused the connection ({exc}); check the broker's log for the reason",
        )
    cause = _ssl_cause(exc)
    if isinstance(cause, ssl.SSLCertVerificationError):
        return BrokerConnectError(
            ConnectFailure.TLS_UNTRUSTED,
            broker,
            f"the broker's certificate is not trusted: check ca_file, and that the URL's host "
            f"is a name in the certificate ({cause.verify_message})",
        )
    text = str(exc)
    if endpoint.tls and "ALERT" in text.upper():
        # With TLS 1.3 the broker's verdict on our certificate arrives after the handshake.
        advice = (
            "check that client_cert is signed by a CA the broker trusts and has not expired"
            if has_client_cert
            else "the broker requires a client certificate: set client_cert and client_key"
        )
        return BrokerConnectError(
            ConnectFailure.CLIENT_CERTIFICATE,
            broker,
            f"the broker rejected the TLS client authentication ({text}); {advice}",
        )
    if cause is not None:
        return BrokerConnectError(
            ConnectFailure.TLS_FAILED,
            broker,
            f"TLS with the broker failed ({cause}); check that the port speaks TLS (mqtts://)",
        )
    return BrokerConnectError(
        ConnectFailure.UNREACHABLE,
        broker,
        f"cannot reach the broker ({text}); retrying with backoff",
    )
