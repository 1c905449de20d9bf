"""Provision a hub from a bundle: check every part, then swap in the new configuration at once.

A provisioning bundle is a directory, a ``.tar.gz`` (``.tgz``) or a ``.zip`` holding:

``bundle.toml``
    ``hub_id`` and ``broker_url`` (``mqtts://host:port``; ``mqtt://`` only with
    ``insecure = true``, which provisioning warns about), optionally ``username`` and
    ``password`` (the password goes to ``secrets/mqtt-password``, never into config.toml),
    ``timezone``, ``state_dir``, ``[ble]``/``[outbox]``/``[logging]``/``[web]`` sections as in
    config.toml (``[web] enabled = true`` turns the patients' pairing page on),
    and ``[[devices]]`` blocks in the shape of config.toml's devices (id, address, profile, name,
    patient or patients, consent_codes, pairing).
``ca.pem``
    The CA certificate(s) that signed the client certificate and the broker's certificate.
``client.pem`` and ``client.key``
    The hub's certificate and its unencrypted private key (mutual TLS).

The certificates are not needed with ``insecure = true``. Nothing is written until everything
has passed: the client certificate is signed by a CA in ``ca.pem``, the key is the certificate's,
both are valid today, the configuration is accepted by `config_from_mapping`, and the broker
accepts a connection with this identity (its certificate verified against ``ca.pem``). The new
configuration directory is built beside the old one, synced, and swapped in by renames; the old
one is kept as ``<config dir>.previous``. Any failure before the swap leaves the old one as it
was, byte for byte.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import enum
import os
import pwd
import shutil
import tarfile
import tempfile
import tomllib
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes  # noqa: TC002 - returned

from gateway.config import config_from_mapping
from gateway.errors import ConfigError, VitalbridgeError
from gateway.mqtt import BrokerConnectError, Publisher, PublisherSettings

if TYPE_CHECKING:
    from collections.abc import Sequence

    from gateway.config import HubConfig
    from gateway.mqtt import ConnectFailure, OutboxRecord

__all__ = [
    "BUNDLE_FILE",
    "CA_FILE",
    "CLIENT_CERT_FILE",
    "CLIENT_KEY_FILE",
    "DEFAULT_CONFIG_DIR",
    "EXPIRY_WARNING_DAYS",
    "PASSWORD_FILE",
    "SERVICE_USER",
    "BrokerCheckError",
    "BundleError",
    "CertificateError",
    "Part",
    "ProvisionError",
    "ProvisionResult",
    "probe_broker",
    "provision",
    "render_toml",
]

DEFAULT_CONFIG_DIR: Final = Path("/etc/vitalbridge")
BUNDLE_FILE: Final = "bundle.toml"
CA_FILE: Final = "ca.pem"
CLIENT_CERT_FILE: Final = "client.pem"
CLIENT_KEY_FILE: Final = "client.key"
PASSWORD_FILE: Final = "mqtt-password"  # noqa: S105 - a file name, not a password
SERVICE_USER: Final = "vitalbridge"
EXPIRY_WARNING_DAYS: Final = 30
_PASSTHROUGH: Final = ("timezone", "state_dir", "ble", "outbox", "logging", "web", "devices")
_BUNDLE_KEYS: Final = frozenset(
    {"hub_id", "broker_url", "insecure", "username", "password", *_PASSTHROUGH}
)
_DIR_MODE: Final = 0o750
_SECRET_DIR_MODE: Final = 0o700
_FILE_MODE: Final = 0o640
_SECRET_MODE: Final = 0o600
_MAX_MEMBER_BYTES: Final = 1_000_000


class Part(enum.StrEnum):
    """The part of a bundle (or of provisioning) a problem is in."""

    BUNDLE = "bundle"
    BUNDLE_TOML = BUNDLE_FILE
    CA = CA_FILE
    CLIENT_CERT = CLIENT_CERT_FILE
    CLIENT_KEY = CLIENT_KEY_FILE
    CONFIG = "configuration"
    BROKER = "broker"
    TARGET = "config dir"


class ProvisionError(VitalbridgeError):
    """Provisioning refused the bundle or could not write it; nothing was changed."""

    def __init__(self, part: Part, message: str) -> None:
        self.part = part
        super().__init__(f"{part.value}: {message}")


class BundleError(ProvisionError):
    """The bundle is missing a file or its bundle.toml is not what provisioning expects."""


class CertificateError(ProvisionError):
    """A certificate or key is unreadable, expired, not yet valid, or does not belong."""


class BrokerCheckError(ProvisionError):
    """The broker could not be reached or refused the bundle's identity; ``failure`` says why."""

    def __init__(self, failure: ConnectFailure | None, message: str) -> None:
        self.failure = failure
        super().__init__(Part.BROKER, message)


@dataclasses.dataclass(frozen=True, slots=True)
class ProvisionResult:
    """What provisioning did (or, with dry_run, would do), in plain sentences for the terminal."""

    hub_id: str
    config_dir: Path
    config: HubConfig
    dry_run: bool
    actions: tuple[str, ...]
    warnings: tuple[str, ...]
    certificate_days_left: int | None


@dataclasses.dataclass(frozen=True, slots=True)
class _Bundle:
    directory: Path
    data: dict[str, object]
    insecure: bool


def provision(
    bundle: Path,
    *,
    config_dir: Path = DEFAULT_CONFIG_DIR,
    dry_run: bool = False,
    check_broker: bool = True,
    owner: str = SERVICE_USER,
    now: dt.datetime | None = None,
) -> ProvisionResult:
    """Check a bundle and install it in ``config_dir`` atomically; raise ProvisionError if bad."""
    moment = now or dt.datetime.now(dt.UTC)
    actions: list[str] = []
    warnings: list[str] = []
    with tempfile.TemporaryDirectory(prefix="vitalbridge-bundle-") as scratch:
        loaded = _open_bundle(bundle, Path(scratch))
        days_left: int | None = None
        if loaded.insecure:
            warnings.append(
                "insecure = true: the broker connection is NOT encrypted and the broker is not "
                "authenticated; use an mqtts:// broker_url for a hub in a patient's home"
            )
        else:
            days_left = _check_certificates(loaded.directory, moment, actions, warnings)
        mapping = _config_mapping(loaded, config_dir)
        config = _check_config(mapping, config_dir)
        actions.append(f"the configuration for hub {config.hub_id} is valid")
        staging_parent = Path(scratch) if dry_run else config_dir.parent
        staging_parent.mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(prefix=f".{config_dir.name}.new-", dir=staging_parent))
        try:
            _stage(loaded, mapping, staged)
            if check_broker:
                asyncio.run(_probe(config.mqtt, config_dir, staged))
                actions.append(f"the broker {config.mqtt.endpoint} accepted this hub's identity")
            else:
                warnings.append("the broker was not checked (--no-broker-check)")
            if dry_run:
                actions.append(f"dry run: nothing was written to {config_dir}")
            else:
                _chown(staged, owner, actions)
                _sync_tree(staged)
                _swap(staged, config_dir, actions)
        finally:
            if staged.exists():
                shutil.rmtree(staged, ignore_errors=True)
    return ProvisionResult(
        hub_id=config.hub_id,
        config_dir=config_dir,
        config=config,
        dry_run=dry_run,
        actions=tuple(actions),
        warnings=tuple(warnings),
        certificate_days_left=days_left,
    )


# Reading the bundle.


def _open_bundle(bundle: Path, scratch: Path) -> _Bundle:
    if bundle.is_dir():
        directory = bundle
    elif bundle.is_file():
        directory = scratch / "bundle"
        directory.mkdir()
        _extract(bundle, directory)
    else:
        raise BundleError(
            Part.BUNDLE,
            f"{bundle} does not exist; give the path of the bundle directory, .tar.gz or .zip",
        )
    toml_file = directory / BUNDLE_FILE
    try:
        data = tomllib.loads(toml_file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BundleError(
            Part.BUNDLE_TOML, f"missing from {bundle}; ask for a complete bundle"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(Part.BUNDLE_TOML, f"cannot be read ({exc}); save it as UTF-8") from exc
    except tomllib.TOMLDecodeError as exc:
        raise BundleError(Part.BUNDLE_TOML, f"is not valid TOML ({exc}); fix that line") from exc
    unknown = sorted(set(data) - _BUNDLE_KEYS)
    if unknown:
        raise BundleError(
            Part.BUNDLE_TOML,
            f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_BUNDLE_KEYS))}",
        )
    for name in ("hub_id", "broker_url"):
        if not isinstance(data.get(name), str):
            raise BundleError(Part.BUNDLE_TOML, f'{name} is missing; add {name} = "..."')
    insecure = data.get("insecure", False)
    if not isinstance(insecure, bool):
        raise BundleError(Part.BUNDLE_TOML, "insecure must be true or false, without quotes")
    url = str(data["broker_url"])
    if url.startswith("mqtt://") and not insecure:
        raise BundleError(
            Part.BUNDLE_TOML,
            "broker_url is mqtt:// (not encrypted); use mqtts://, or for a test bench only add "
            "insecure = true",
        )
    for name in ("username", "password"):
        if name in data and not isinstance(data[name], str):
            raise BundleError(Part.BUNDLE_TOML, f"{name} must be text in double quotes")
    if "password" in data and "username" not in data:
        raise BundleError(Part.BUNDLE_TOML, "a password needs a username; add username")
    if not insecure:
        for name in (CA_FILE, CLIENT_CERT_FILE, CLIENT_KEY_FILE):
            if not (directory / name).is_file():
                raise BundleError(Part(name), f"missing from {bundle}; ask for a complete bundle")
    return _Bundle(directory=directory, data=data, insecure=insecure)


def _extract(archive: Path, target: Path) -> None:
    name = archive.name.lower()
    try:
        if name.endswith((".tar.gz", ".tgz")):
            with tarfile.open(archive, "r:gz") as tar:
                members = tar.getmembers()
                _check_members([(m.name, m.size, m.isfile() or m.isdir()) for m in members])
                tar.extractall(target, filter="data")
        elif name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zipped:
                infos = zipped.infolist()
                _check_members([(i.filename, i.file_size, True) for i in infos])
                zipped.extractall(target)  # noqa: S202 - every member checked just above
        else:
            raise BundleError(
                Part.BUNDLE, f"{archive.name} is not a .tar.gz, .tgz or .zip; give one of those"
            )
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as exc:
        raise BundleError(
            Part.BUNDLE, f"{archive.name} cannot be unpacked ({exc}); ask for a new copy"
        ) from exc
    # An archive made of one folder: use that folder.
    entries = list(target.iterdir())
    if len(entries) == 1 and entries[0].is_dir() and not (target / BUNDLE_FILE).exists():
        for entry in entries[0].iterdir():
            entry.rename(target / entry.name)


def _check_members(members: Sequence[tuple[str, int, bool]]) -> None:
    for name, size, regular in members:
        if name.startswith("/") or ".." in Path(name).parts or not regular:
            raise BundleError(
                Part.BUNDLE, f"the archive holds {name!r}, which is not a plain relative file"
            )
        if size > _MAX_MEMBER_BYTES:
            raise BundleError(Part.BUNDLE, f"{name!r} is larger than a bundle file can be")


# Certificates.


def _check_certificates(
    directory: Path, now: dt.datetime, actions: list[str], warnings: list[str]
) -> int:
    cas = _load_certificates(directory / CA_FILE, Part.CA)
    [client, *_] = _load_certificates(directory / CLIENT_CERT_FILE, Part.CLIENT_CERT)
    key = _load_key(directory / CLIENT_KEY_FILE)
    issuer = _issuer_of(client, cas)
    _check_validity(issuer, Part.CA, now)
    days = _check_validity(client, Part.CLIENT_CERT, now)
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if key.public_key().public_bytes(der, public) != client.public_key().public_bytes(der, public):
        raise CertificateError(
            Part.CLIENT_KEY,
            f"does not match {CLIENT_CERT_FILE} (another certificate's key); ask for the key "
            "issued with this certificate",
        )
    subject = client.subject.rfc4514_string()
    actions.append(
        f"client certificate {subject} is signed by {issuer.subject.rfc4514_string()}, matches "
        f"its key, and is valid for {days} more day(s)"
    )
    if days < EXPIRY_WARNING_DAYS:
        warnings.append(
            f"the client certificate expires in {days} day(s): order a new bundle before "
            f"{client.not_valid_after_utc:%Y-%m-%d}"
        )
    return days


def _load_certificates(file: Path, part: Part) -> list[x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(file.read_bytes())
    except (OSError, ValueError) as exc:
        raise CertificateError(
            part, f"is not a PEM certificate ({exc}); ask for a new bundle"
        ) from exc
    return certificates


def _load_key(file: Path) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(file.read_bytes(), password=None)
    except TypeError as exc:
        raise CertificateError(
            Part.CLIENT_KEY,
            "is encrypted with a passphrase; the hub starts unattended, so ask for an "
            "unencrypted key (it is stored readable only by the service user)",
        ) from exc
    except (OSError, ValueError) as exc:
        raise CertificateError(
            Part.CLIENT_KEY, f"is not a PEM private key ({exc}); ask for a new bundle"
        ) from exc


def _issuer_of(client: x509.Certificate, cas: Sequence[x509.Certificate]) -> x509.Certificate:
    for ca in cas:
        try:
            client.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return ca
    raise CertificateError(
        Part.CLIENT_CERT,
        f"is not signed by any CA in {CA_FILE} (issuer {client.issuer.rfc4514_string()}); the "
        "bundle mixes files from different PKIs: ask for a new bundle",
    )


def _check_validity(certificate: x509.Certificate, part: Part, now: dt.datetime) -> int:
    if now < certificate.not_valid_before_utc:
        raise CertificateError(
            part,
            f"is not valid until {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC; check "
            "the hub's clock (`timedatectl`), or wait until then",
        )
    if now >= certificate.not_valid_after_utc:
        raise CertificateError(
            part,
            f"expired on {certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC; ask for a new "
            "bundle (or check the hub's clock with `timedatectl`)",
        )
    return (certificate.not_valid_after_utc - now).days


# The configuration.


def _config_mapping(bundle: _Bundle, config_dir: Path) -> dict[str, object]:
    data = bundle.data
    mqtt: dict[str, object] = {"broker_url": data["broker_url"]}
    if not bundle.insecure:
        certs = config_dir / "certs"
        mqtt.update(
            ca_file=str(certs / CA_FILE),
            client_cert=str(certs / CLIENT_CERT_FILE),
            client_key=str(certs / CLIENT_KEY_FILE),
        )
    if "username" in data:
        mqtt["username"] = data["username"]
    if "password" in data:
        mqtt["password_file"] = str(config_dir / "secrets" / PASSWORD_FILE)
    mapping: dict[str, object] = {"hub_id": data["hub_id"], "mqtt": mqtt}
    mapping.update((name, data[name]) for name in _PASSTHROUGH if name in data)
    return mapping


def _check_config(mapping: dict[str, object], config_dir: Path) -> HubConfig:
    try:
        return config_from_mapping(mapping, source=f"{BUNDLE_FILE} (for {config_dir})")
    except ConfigError as exc:
        raise BundleError(Part.CONFIG, f"the bundle makes an invalid configuration: {exc}") from exc


def _toml_value(value: object) -> str:
    match value:
        case bool():
            return "true" if value else "false"
        case int() | float():
            return repr(value)
        case str():
            return _toml_string(value)
        case dict():
            items = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
            return "{ " + items + " }" if items else "{}"
        case list() | tuple():
            return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise BundleError(Part.BUNDLE_TOML, f"holds a value of type {type(value).__name__}")


def _toml_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if c >= " " or c == "\t" else f"\\u{ord(c):04x}" for c in escaped)
    return f'"{escaped}"'


def _toml_key(key: object) -> str:
    text = str(key)
    if text and all(c.isascii() and (c.isalnum() or c in "-_") for c in text):
        return text
    return _toml_string(text)


def render_toml(mapping: dict[str, object]) -> str:
    """Write a configuration mapping as config.toml text (scalars, tables, arrays of tables)."""
    lines = ["# Written by `vitalbridge provision`; see docs/provisioning.md.", ""]
    tables: list[tuple[str, dict[str, object]]] = []
    arrays: list[tuple[str, list[dict[str, object]]]] = []
    for key, value in mapping.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif isinstance(value, list | tuple) and value and all(isinstance(v, dict) for v in value):
            arrays.append((key, list(value)))
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, table in tables:
        lines += ["", f"[{_toml_key(key)}]"]
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items()]
    for key, items in arrays:
        for item in items:
            lines += ["", f"[[{_toml_key(key)}]]"]
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in item.items()]
    return "\n".join(lines) + "\n"


# Writing.


def _write(path: Path, data: bytes, mode: int) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as handle:
        os.fchmod(handle.fileno(), mode)  # the umask may have narrowed the mode open gave
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _stage(bundle: _Bundle, mapping: dict[str, object], staged: Path) -> None:
    staged.chmod(_DIR_MODE)
    _write(staged / "config.toml", render_toml(mapping).encode(), _FILE_MODE)
    if not bundle.insecure:
        certs = staged / "certs"
        certs.mkdir(mode=_DIR_MODE)
        certs.chmod(_DIR_MODE)
        for name, mode in (
            (CA_FILE, _FILE_MODE),
            (CLIENT_CERT_FILE, _FILE_MODE),
            (CLIENT_KEY_FILE, _SECRET_MODE),
        ):
            _write(certs / name, (bundle.directory / name).read_bytes(), mode)
    if "password" in bundle.data:
        secrets = staged / "secrets"
        secrets.mkdir(mode=_SECRET_DIR_MODE)
        secrets.chmod(_SECRET_DIR_MODE)
        password = str(bundle.data["password"])
        _write(secrets / PASSWORD_FILE, password.encode() + b"\n", _SECRET_MODE)


class _NoOutbox:
    """The probe connects and leaves: it never asks the outbox for anything."""

    async def next_batch(self, limit: int) -> Sequence[OutboxRecord]:
        """Hand out nothing."""
        del limit
        return ()

    async def ack(self, reading_id: str) -> object:
        """Nothing was handed out, so nothing is acknowledged."""
        return reading_id

    async def release(self, reading_id: str, error: str | None) -> object:
        """Nothing was handed out, so nothing is released."""
        del error
        return reading_id

    async def wait_for_pending(self) -> object:
        """Never return: there is never anything to send."""
        await asyncio.Event().wait()
        return None


async def probe_broker(settings: PublisherSettings) -> None:
    """Connect to the broker once with these settings; raise BrokerConnectError or TimeoutError."""
    async with asyncio.timeout(settings.connect_timeout_s * 2):
        await Publisher(settings, _NoOutbox()).probe()


async def _probe(settings: PublisherSettings, config_dir: Path, staged: Path) -> None:
    # The configuration names the final paths; the probe reads the staged copies of them.
    def staged_path(path: Path | None) -> Path | None:
        return None if path is None else staged / path.relative_to(config_dir)

    probing = settings.model_copy(
        update={
            "ca_file": staged_path(settings.ca_file),
            "client_cert": staged_path(settings.client_cert),
            "client_key": staged_path(settings.client_key),
            "password_file": staged_path(settings.password_file),
        }
    )
    try:
        await probe_broker(probing)
    except BrokerConnectError as exc:
        raise BrokerCheckError(
            exc.failure,
            f"the bundle's identity was not accepted: "
            f"{str(exc).removesuffix('; retrying with backoff')}",
        ) from exc
    except TimeoutError as exc:
        raise BrokerCheckError(
            None,
            f"{settings.endpoint} did not answer in time; check the hub's internet connection "
            "and that the broker is up",
        ) from exc


def _chown(staged: Path, owner: str, actions: list[str]) -> None:
    if os.geteuid() != 0:
        actions.append(f"left the files owned by the current user (not root, so not {owner})")
        return
    try:
        account = pwd.getpwnam(owner)
    except KeyError:
        actions.append(f"left the files owned by root: there is no {owner} user on this system")
        return
    for path in [staged, *staged.rglob("*")]:
        os.chown(path, account.pw_uid, account.pw_gid, follow_symlinks=False)
    actions.append(f"gave the files to the {owner} user")


def _sync_tree(staged: Path) -> None:
    for directory in [path for path in staged.rglob("*") if path.is_dir()] + [staged]:
        _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _swap(staged: Path, config_dir: Path, actions: list[str]) -> None:
    backup = config_dir.with_name(f"{config_dir.name}.previous")
    try:
        if config_dir.exists():
            if backup.exists():
                shutil.rmtree(backup)
            config_dir.rename(backup)
        try:
            staged.rename(config_dir)
        except OSError:
            # Put the old directory back: the hub keeps the configuration it had.
            if backup.exists() and not config_dir.exists():
                backup.rename(config_dir)
            raise
        _fsync_directory(config_dir.parent)
    except OSError as exc:
        raise ProvisionError(
            Part.TARGET,
            f"cannot replace {config_dir} ({exc.strerror or exc}); run as root, and check "
            "that the file system is writable",
        ) from exc
    if backup.exists():
        actions.append(f"kept the previous configuration in {backup}")
    actions.append(
        f"wrote {config_dir}/config.toml and the certificates and secrets beside it "
        "(keys and passwords readable by their owner only)"
    )
