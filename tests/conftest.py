"""The test broker: a mosquitto each test starts on its own loopback port; a test PKI for TLS."""

from __future__ import annotations

import base64
import datetime as dt
import getpass
import hashlib
import ipaddress
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# The distribution installs the broker in /usr/sbin, which is not on every user's PATH.
MOSQUITTO_FALLBACKS = (Path("/usr/sbin/mosquitto"), Path("/usr/local/sbin/mosquitto"))
# The system broker's port: tests must never talk to a broker they did not start.
SYSTEM_BROKER_PORT = 1883
READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
PORT_ATTEMPTS = 3


def mosquitto_binary() -> Path:
    """The mosquitto executable, or a test failure that says how to install it."""
    found = shutil.which("mosquitto")
    if found:
        return Path(found)
    for candidate in MOSQUITTO_FALLBACKS:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(
        "mosquitto is not installed: run `make test`, which installs it with the system package "
        "manager (or `apt-get install mosquitto`)",
        pytrace=False,
    )


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (never the system broker's)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port != SYSTEM_BROKER_PORT:
            return port


def _password_line(username: str, password: str) -> str:
    """A password-file line in mosquitto's salted SHA-512 format (``$6$salt$hash``)."""
    salt = os.urandom(12)
    digest = hashlib.sha512(password.encode() + salt).digest()
    return f"{username}:$6${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def write_password_file(path: Path, users: dict[str, str]) -> None:
    """Write a mosquitto password file, with mosquitto_passwd when it is installed."""
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        path.write_text("".join(_password_line(u, p) + "\n" for u, p in users.items()))
        return
    path.write_text("")
    for username, password in users.items():
        subprocess.run(  # noqa: S603 - a fixed tool with arguments the test chose
            [tool, "-b", str(path), username, password],
            check=True,
            capture_output=True,
            timeout=10,
        )


@dataclass(frozen=True)
class BrokerTls:
    """The files a TLS listener needs; ``require_certificate`` turns on mutual TLS."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    require_certificate: bool = False


@dataclass
class Mosquitto:
    """One mosquitto this test owns: its port, config directory and process, stopped by PID."""

    binary: Path
    directory: Path
    port: int
    tls: BrokerTls | None = None
    users: dict[str, str] | None = None
    acl: str | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    starts: int = 0

    @property
    def host(self) -> str:
        """The loopback address it listens on."""
        return "127.0.0.1"

    @property
    def url(self) -> str:
        """The broker URL a publisher takes: ``mqtt://`` or ``mqtts://`` with host and port."""
        scheme = "mqtts" if self.tls else "mqtt"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def config_file(self) -> Path:
        """Where its configuration is written."""
        return self.directory / "mosquitto.conf"

    @property
    def log_file(self) -> Path:
        """Its log (stdout and stderr of every start)."""
        return self.directory / "mosquitto.log"

    @property
    def acl_file(self) -> Path:
        """Its ACL file; set ``acl`` and call ``reload()`` to change a running broker's rules."""
        return self.directory / "acl"

    def write_config(self) -> None:
        """Write the config: one loopback listener, no persistence, optional TLS/passwords/ACL."""
        lines = [
            f"listener {self.port} {self.host}",
            # Running as root, mosquitto would switch to the "mosquitto" user, who cannot read
            # the test's private tmp dir; naming the current user keeps it as is.
            f"user {getpass.getuser()}",
            "persistence false",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            # Without it Nagle delays each PUBACK and pipelined QoS 1 slows several-fold.
            "set_tcp_nodelay true",
        ]
        if self.users is None:
            lines.append("allow_anonymous true")
        else:
            password_file = self.directory / "passwords"
            write_password_file(password_file, self.users)
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        if self.acl is not None:
            self.acl_file.write_text(self.acl)
            lines.append(f"acl_file {self.acl_file}")
        if self.tls is not None:
            lines += [
                f"cafile {self.tls.ca_file}",
                f"certfile {self.tls.cert_file}",
                f"keyfile {self.tls.key_file}",
                f"require_certificate {'true' if self.tls.require_certificate else 'false'}",
            ]
        self.config_file.write_text("\n".join(lines) + "\n")

    @property
    def running(self) -> bool:
        """Whether its process is alive."""
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start it on its port and return once the port accepts connections (bounded)."""
        if self.running:
            msg = "this mosquitto is already running"
            raise RuntimeError(msg)
        for _ in range(PORT_ATTEMPTS):
            if self._spawn():
                self.starts += 1
                return
            # Someone took the free port between our probe and mosquitto's bind. A first start
            # may move to another; a restart must keep its port, which the publisher knows.
            if self.starts or "Address already in use" not in self.log():
                break
            self.port = free_port()
        pytest.fail(f"mosquitto exited at start:\n{self.log()}", pytrace=False)

    def _spawn(self) -> bool:
        self.write_config()
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - the broker binary and our config
                [str(self.binary), "-c", str(self.config_file)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self._wait_ready()

    def _wait_ready(self) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                return False
            # Its own log line first: a connect alone could reach whoever took the port.
            if f"listen socket on port {self.port}." in self.log():
                try:
                    with socket.create_connection((self.host, self.port), timeout=0.5):
                        return True
                except OSError:
                    pass
            time.sleep(0.01)  # polling a process and a port: there is no event to wait on
        self.stop()
        pytest.fail(
            f"mosquitto did not listen on {self.port} within {READY_TIMEOUT_S}s:\n{self.log()}",
            pytrace=False,
        )

    def kill(self) -> None:
        """SIGKILL it, as a crash or a power cut would, and reap it; the port stays ours."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=STOP_TIMEOUT_S)
        self.process = None

    def pause(self) -> None:
        """SIGSTOP it: connections stay open and nothing is answered, like a link gone dead."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT it after ``pause()``."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Stop it by PID: SIGTERM, then SIGKILL if it does not exit in time."""
        if self.process is None:
            return
        if self.process.poll() is None:
            # A paused broker would not act on SIGTERM until continued.
            self.process.send_signal(signal.SIGCONT)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGKILL)
                self.process.wait(timeout=STOP_TIMEOUT_S)
        self.process = None

    def restart(self) -> None:
        """SIGKILL it and start it again on the same port, with whatever config it has now."""
        self.kill()
        self.start()

    def reload(self) -> None:
        """Rewrite its config files and SIGHUP it, so it rereads the ACL and password files."""
        assert self.process is not None
        self.write_config()
        self.process.send_signal(signal.SIGHUP)

    def log(self) -> str:
        """Everything it has logged so far."""
        if not self.log_file.exists():
            return ""
        return self.log_file.read_text(errors="replace")


MosquittoFactory = Callable[..., Mosquitto]


@pytest.fixture
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoFactory]:
    """Start brokers of our own: ``mosquitto(tls=..., users=..., acl=..., start=True)``."""
    binary = mosquitto_binary()
    brokers: list[Mosquitto] = []

    def factory(
        *,
        tls: BrokerTls | None = None,
        users: dict[str, str] | None = None,
        acl: str | None = None,
        start: bool = True,
    ) -> Mosquitto:
        broker = Mosquitto(
            binary=binary,
            directory=tmp_path_factory.mktemp("mosquitto"),
            port=free_port(),
            tls=tls,
            users=users,
            acl=acl,
        )
        brokers.append(broker)
        if start:
            broker.start()
        return broker

    yield factory
    for broker in brokers:
        broker.stop()


@dataclass(frozen=True)
class Pki:
    """A test CA, the broker's certificate for 127.0.0.1, a client certificate and a stranger CA."""

    ca_file: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca_file: Path

    def broker_tls(self, *, require_certificate: bool = False) -> BrokerTls:
        """The broker side of this PKI."""
        return BrokerTls(self.ca_file, self.server_cert, self.server_key, require_certificate)


def _key() -> ec.EllipticCurvePrivateKey:
    # P-256 keys take microseconds where RSA takes tens of milliseconds, and OpenSSL takes both.
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def _write_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    name: str,
    *,
    server: bool,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _key()
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return key, builder.sign(ca_key, hashes.SHA256())


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A PKI made for this test session with cryptography; nothing is read from the system."""
    directory = tmp_path_factory.mktemp("pki")
    ca_key, ca_cert = _ca("Vitalbridge test CA")
    server_key, server_cert = _leaf(ca_key, ca_cert, "127.0.0.1", server=True)
    client_key, client_cert = _leaf(ca_key, ca_cert, "hub-test", server=False)
    _, other_ca_cert = _ca("Somebody else's CA")
    return Pki(
        ca_file=_write_cert(directory / "ca.pem", ca_cert),
        server_cert=_write_cert(directory / "server.pem", server_cert),
        server_key=_write_key(directory / "server.key", server_key),
        client_cert=_write_cert(directory / "client.pem", client_cert),
        client_key=_write_key(directory / "client.key", client_key),
        other_ca_file=_write_cert(directory / "other-ca.pem", other_ca_cert),
    )


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """Undo a command's logging set-up (structlog and the root logger) after each test.

    CLI tests run commands that configure logging for a terminal; later tests capture log
    events with structlog's test tools and need the defaults back.
    """
    config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        structlog.configure(**config)
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
