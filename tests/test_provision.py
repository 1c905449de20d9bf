"""`provision`: good bundles install whole, bad ones are refused by part and change nothing.

The broker is a real mosquitto with mutual TLS from the session's test PKI; certificates that
are expired, not yet valid or signed by another CA are made here with cryptography.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
import tarfile
import zipfile
from typing import TYPE_CHECKING

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from gateway.config import load_config
from gateway.mqtt import ConnectFailure
from gateway.provision import (
    BrokerCheckError,
    BundleError,
    CertificateError,
    Part,
    ProvisionError,
    provision,
    render_toml,
)
from gateway.support_cli import app
from tests.conftest import free_port

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import MosquittoFactory, Pki

PATIENT = "pt-7f3a9c21"
BUNDLE_TOML = """\
hub_id = "hub-0042"
broker_url = "{url}"
username = "hub-0042"
password = "s3cret pass"
timezone = "Europe/London"
state_dir = "{state_dir}"

[web]
enabled = true

[[devices]]
id = "cuff-kitchen"
address = "C4:7C:8D:6A:12:34"
profile = "blood_pressure"
patient = "{patient}"

[[devices]]
id = "scale-bathroom"
address = "C4:7C:8D:6A:56:78"
profile = "weight_scale"
patients = {{ 1 = "pt-b8e41d07", 2 = "pt-0c11ee52" }}
consent_codes = {{ 1 = 1234 }}
"""


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class LocalPki:
    """A CA of this test module, to sign the odd certificates the session PKI lacks."""

    def __init__(self) -> None:
        self.key = _key()
        now = dt.datetime.now(dt.UTC)
        self.cert = _cert(
            "Provision test CA",
            self.key,
            "Provision test CA",
            self.key,
            ca=True,
            not_before=now - dt.timedelta(days=1),
            not_after=now + dt.timedelta(days=3650),
        )

    def client(self, *, not_before: dt.timedelta, not_after: dt.timedelta) -> tuple[bytes, bytes]:
        """A client certificate valid from now+not_before to now+not_after, and its key."""
        key = _key()
        now = dt.datetime.now(dt.UTC)
        cert = _cert(
            "hub-0042",
            key,
            "Provision test CA",
            self.key,
            ca=False,
            not_before=now + not_before,
            not_after=now + not_after,
        )
        return _pem(cert), _key_pem(key)


@pytest.fixture(scope="module")
def local_pki() -> LocalPki:
    """One CA for the module's odd certificates."""
    return LocalPki()


def _bundle(
    directory: Path,
    *,
    url: str,
    ca: bytes | None,
    cert: bytes | None,
    key: bytes | None,
    toml: str | None = None,
    state_dir: Path | None = None,
) -> Path:
    directory.mkdir(parents=True)
    text = toml or BUNDLE_TOML.format(
        url=url, state_dir=state_dir or directory / "state", patient=PATIENT
    )
    (directory / "bundle.toml").write_text(text, encoding="utf-8")
    for name, data in (("ca.pem", ca), ("client.pem", cert), ("client.key", key)):
        if data is not None:
            (directory / name).write_bytes(data)
    return directory


def _pki_bundle(directory: Path, pki: Pki, url: str) -> Path:
    return _bundle(
        directory,
        url=url,
        ca=pki.ca_file.read_bytes(),
        cert=pki.client_cert.read_bytes(),
        key=pki.client_key.read_bytes(),
    )


def _snapshot(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every path under root's parent, with its mode and (for files) its bytes."""
    tree: dict[str, tuple[int, bytes | None]] = {}
    for path in sorted(root.parent.rglob("*")):
        info = path.lstat()
        content = path.read_bytes() if path.is_file() else None
        tree[str(path.relative_to(root.parent))] = (stat.S_IMODE(info.st_mode), content)
    return tree


@pytest.fixture
def previous(tmp_path: Path) -> Path:
    """A configuration directory as an earlier provisioning left it."""
    config_dir = tmp_path / "etc" / "vitalbridge"
    (config_dir / "certs").mkdir(parents=True)
    (config_dir / "config.toml").write_text('hub_id = "hub-old"\n', encoding="utf-8")
    (config_dir / "certs" / "client.key").write_bytes(b"old key")
    (config_dir / "certs" / "client.key").chmod(0o600)
    return config_dir


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_good_bundle_is_installed_and_loads(
    tmp_path: Path, pki: Pki, mosquitto: MosquittoFactory, previous: Path
) -> None:
    broker = mosquitto(tls=pki.broker_tls(require_certificate=True))
    bundle = _pki_bundle(tmp_path / "bundle", pki, broker.url)

    result = provision(bundle, config_dir=previous)

    config = load_config(previous / "config.toml")
    assert config.hub_id == "hub-0042"
    assert config.mqtt.ca_file == previous / "certs" / "ca.pem"
    assert config.mqtt.client_key == previous / "certs" / "client.key"
    assert config.mqtt.read_password() == "s3cret pass"
    assert config.device("cuff-kitchen") is not None
    # Provisioning is what turns the patients' pairing page on.
    assert config.web.enabled
    scale = config.device("scale-bathroom")
    assert scale is not None
    assert scale.patients == {1: "pt-b8e41d07", 2: "pt-0c11ee52"}
    assert "s3cret" not in (previous / "config.toml").read_text(encoding="utf-8")
    assert (previous / "certs" / "client.pem").read_bytes() == pki.client_cert.read_bytes()
    # The earlier configuration is the backup, unchanged.
    backup = previous.with_name("vitalbridge.previous")
    assert (backup / "config.toml").read_text(encoding="utf-8") == 'hub_id = "hub-old"\n'
    assert (backup / "certs" / "client.key").read_bytes() == b"old key"
    # No staging directory is left behind.
    assert sorted(p.name for p in previous.parent.iterdir()) == [
        "vitalbridge",
        "vitalbridge.previous",
    ]
    assert any("accepted" in action for action in result.actions)
    # The session PKI's certificates live a day: provisioning warns about it.
    assert result.certificate_days_left == 0
    assert any("expires in 0 day(s)" in warning for warning in result.warnings)
    assert not result.dry_run


def test_written_files_have_the_right_permissions(
    tmp_path: Path, pki: Pki, mosquitto: MosquittoFactory
) -> None:
    broker = mosquitto(tls=pki.broker_tls(require_certificate=True))
    config_dir = tmp_path / "fresh" / "vitalbridge"
    result = provision(_pki_bundle(tmp_path / "bundle", pki, broker.url), config_dir=config_dir)

    assert _mode(config_dir) == 0o750
    assert _mode(config_dir / "certs") == 0o750
    assert _mode(config_dir / "secrets") == 0o700
    assert _mode(config_dir / "config.toml") == 0o640
    assert _mode(config_dir / "certs" / "ca.pem") == 0o640
    assert _mode(config_dir / "certs" / "client.pem") == 0o640
    assert _mode(config_dir / "certs" / "client.key") == 0o600
    assert _mode(config_dir / "secrets" / "mqtt-password") == 0o600
    assert not config_dir.with_name("vitalbridge.previous").exists()
    # There is no "vitalbridge" user here (or we are not root): provisioning says so.
    if os.geteuid() == 0:
        assert any("no vitalbridge user" in action for action in result.actions)
    else:
        assert any("not root" in action for action in result.actions)


def test_a_tar_gz_and_a_zip_bundle_are_unpacked(
    tmp_path: Path, pki: Pki, mosquitto: MosquittoFactory
) -> None:
    broker = mosquitto(tls=pki.broker_tls(require_certificate=True))
    source = _pki_bundle(tmp_path / "bundle", pki, broker.url)
    archive = tmp_path / "hub-0042.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname="hub-0042")  # one top-level folder, as people pack them
    zipped = tmp_path / "hub-0042.zip"
    with zipfile.ZipFile(zipped, "w") as zip_file:
        for file in source.iterdir():
            zip_file.write(file, file.name)

    provision(archive, config_dir=tmp_path / "a" / "vitalbridge")
    provision(zipped, config_dir=tmp_path / "b" / "vitalbridge")

    assert load_config(tmp_path / "a" / "vitalbridge" / "config.toml").hub_id == "hub-0042"
    assert load_config(tmp_path / "b" / "vitalbridge" / "config.toml").hub_id == "hub-0042"


def test_a_dry_run_checks_everything_and_writes_nothing(
    tmp_path: Path, pki: Pki, mosquitto: MosquittoFactory, previous: Path
) -> None:
    broker = mosquitto(tls=pki.broker_tls(require_certificate=True))
    before = _snapshot(previous)

    result = provision(
        _pki_bundle(tmp_path / "bundle", pki, broker.url), config_dir=previous, dry_run=True
    )

    assert result.dry_run
    assert any("dry run" in action for action in result.actions)
    assert _snapshot(previous) == before


def _refused(
    bundle: Path, config_dir: Path, error: type[ProvisionError], part: Part
) -> ProvisionError:
    before = _snapshot(config_dir)
    with pytest.raises(error) as caught:
        provision(bundle, config_dir=config_dir)
    assert caught.value.part is part
    assert str(caught.value).startswith(f"{part.value}: ")
    assert _snapshot(config_dir) == before, "a refused bundle changed the configuration"
    return caught.value


def test_an_expired_client_certificate_is_refused(
    tmp_path: Path, local_pki: LocalPki, previous: Path
) -> None:
    cert, key = local_pki.client(not_before=dt.timedelta(days=-400), not_after=dt.timedelta(-1))
    bundle = _bundle(
        tmp_path / "bundle", url="mqtts://127.0.0.1:1", ca=_pem(local_pki.cert), cert=cert, key=key
    )
    error = _refused(bundle, previous, CertificateError, Part.CLIENT_CERT)
    assert "expired on" in str(error)


def test_a_client_certificate_not_yet_valid_is_refused(
    tmp_path: Path, local_pki: LocalPki, previous: Path
) -> None:
    cert, key = local_pki.client(not_before=dt.timedelta(days=2), not_after=dt.timedelta(400))
    bundle = _bundle(
        tmp_path / "bundle", url="mqtts://127.0.0.1:1", ca=_pem(local_pki.cert), cert=cert, key=key
    )
    error = _refused(bundle, previous, CertificateError, Part.CLIENT_CERT)
    assert "not valid until" in str(error)
    assert "timedatectl" in str(error)


def test_a_key_of_another_certificate_is_refused(
    tmp_path: Path, local_pki: LocalPki, previous: Path
) -> None:
    cert, _ = local_pki.client(not_before=dt.timedelta(-1), not_after=dt.timedelta(400))
    bundle = _bundle(
        tmp_path / "bundle",
        url="mqtts://127.0.0.1:1",
        ca=_pem(local_pki.cert),
        cert=cert,
        key=_key_pem(_key()),
    )
    error = _refused(bundle, previous, CertificateError, Part.CLIENT_KEY)
    assert "does not match client.pem" in str(error)


def test_a_client_certificate_of_another_ca_is_refused(
    tmp_path: Path, pki: Pki, previous: Path
) -> None:
    bundle = _bundle(
        tmp_path / "bundle",
        url="mqtts://127.0.0.1:1",
        ca=pki.other_ca_file.read_bytes(),
        cert=pki.client_cert.read_bytes(),
        key=pki.client_key.read_bytes(),
    )
    error = _refused(bundle, previous, CertificateError, Part.CLIENT_CERT)
    assert "not signed by any CA in ca.pem" in str(error)


def test_an_unreachable_broker_is_refused(tmp_path: Path, pki: Pki, previous: Path) -> None:
    bundle = _pki_bundle(tmp_path / "bundle", pki, f"mqtts://127.0.0.1:{free_port()}")
    error = _refused(bundle, previous, BrokerCheckError, Part.BROKER)
    assert isinstance(error, BrokerCheckError)
    assert error.failure is ConnectFailure.UNREACHABLE
    assert "retrying" not in str(error)  # provisioning connects once


def test_a_broker_whose_certificate_the_bundle_ca_did_not_sign_is_refused(
    tmp_path: Path, pki: Pki, mosquitto: MosquittoFactory, local_pki: LocalPki, previous: Path
) -> None:
    # The bundle's own chain is fine, but the broker's certificate comes from the session PKI.
    broker = mosquitto(tls=pki.broker_tls())
    cert, key = local_pki.client(not_before=dt.timedelta(-1), not_after=dt.timedelta(400))
    bundle = _bundle(
        tmp_path / "bundle", url=broker.url, ca=_pem(local_pki.cert), cert=cert, key=key
    )
    error = _refused(bundle, previous, BrokerCheckError, Part.BROKER)
    assert isinstance(error, BrokerCheckError)
    assert error.failure is ConnectFailure.TLS_UNTRUSTED


@pytest.mark.parametrize("missing", ["ca.pem", "client.pem", "client.key"])
def test_a_missing_file_is_named(tmp_path: Path, pki: Pki, previous: Path, missing: str) -> None:
    bundle = _pki_bundle(tmp_path / "bundle", pki, "mqtts://127.0.0.1:1")
    (bundle / missing).unlink()
    error = _refused(bundle, previous, BundleError, Part(missing))
    assert "missing from" in str(error)


def test_a_missing_bundle_toml_is_named(tmp_path: Path, pki: Pki, previous: Path) -> None:
    bundle = _pki_bundle(tmp_path / "bundle", pki, "mqtts://127.0.0.1:1")
    (bundle / "bundle.toml").unlink()
    _refused(bundle, previous, BundleError, Part.BUNDLE_TOML)


@pytest.mark.parametrize(
    ("toml", "part", "words"),
    [
        ('hub_id = "hub-1"\nbroker_url = ', Part.BUNDLE_TOML, "not valid TOML"),
        ('broker_url = "mqtts://b:8883"\n', Part.BUNDLE_TOML, "hub_id is missing"),
        ('hub_id = "h"\nbroker_url = "mqtt://b:1883"\n', Part.BUNDLE_TOML, "insecure = true"),
        ('hub_id = "h"\nbroker_url = "mqtts://b"\nsecret = 1\n', Part.BUNDLE_TOML, "secret"),
        ('hub_id = "h"\nbroker_url = "mqtts://b"\npassword = "x"\n', Part.BUNDLE_TOML, "username"),
        ('hub_id = "bad id!"\nbroker_url = "mqtts://b"\n', Part.CONFIG, "hub_id"),
        (
            (
                'hub_id = "h"\nbroker_url = "mqtts://b"\n[[devices]]\nid = "d"\naddress = "nope"\n'
                'profile = "blood_pressure"\n'
            ),
            Part.CONFIG,
            "devices.0.address",
        ),
    ],
)
def test_a_bad_bundle_toml_is_refused_precisely(
    tmp_path: Path, pki: Pki, previous: Path, toml: str, part: Part, words: str
) -> None:
    bundle = _bundle(
        tmp_path / "bundle",
        url="",
        ca=pki.ca_file.read_bytes(),
        cert=pki.client_cert.read_bytes(),
        key=pki.client_key.read_bytes(),
        toml=toml,
    )
    error = _refused(bundle, previous, BundleError, part)
    assert words in str(error)


def test_a_bundle_that_does_not_exist(tmp_path: Path, previous: Path) -> None:
    _refused(tmp_path / "nowhere", previous, BundleError, Part.BUNDLE)


def test_an_archive_escaping_its_directory_is_refused(tmp_path: Path, previous: Path) -> None:
    archive = tmp_path / "evil.tar.gz"
    payload = tmp_path / "payload"
    payload.write_text("x", encoding="utf-8")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(payload, arcname="../escaped")
    error = _refused(archive, previous, BundleError, Part.BUNDLE)
    assert "not a plain relative file" in str(error)


def test_an_insecure_broker_is_allowed_only_when_asked_and_warned_about(
    tmp_path: Path, mosquitto: MosquittoFactory
) -> None:
    broker = mosquitto()
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "bundle.toml").write_text(
        f'hub_id = "hub-bench"\nbroker_url = "{broker.url}"\ninsecure = true\n'
        f'state_dir = "{tmp_path / "state"}"\n',
        encoding="utf-8",
    )
    config_dir = tmp_path / "etc" / "vitalbridge"
    result = provision(bundle, config_dir=config_dir)
    assert any("NOT encrypted" in warning for warning in result.warnings)
    config = load_config(config_dir / "config.toml")
    assert config.mqtt.ca_file is None
    assert not (config_dir / "certs").exists()


def test_render_toml_round_trips_awkward_text() -> None:
    import tomllib  # noqa: PLC0415 - only this test parses

    mapping: dict[str, object] = {
        "name": 'a "quoted"\\ value\nwith a newline',
        "flag": True,
        "section": {"count": 3, "table": {1: "x"}},
        "items": [{"id": "a"}, {"id": "b"}],
    }
    parsed = tomllib.loads(render_toml(mapping))
    assert parsed["name"] == mapping["name"]
    assert parsed["flag"] is True
    assert parsed["section"] == {"count": 3, "table": {"1": "x"}}
    assert parsed["items"] == [{"id": "a"}, {"id": "b"}]


def test_the_command_prints_what_it_did_and_refuses_with_exit_78(
    tmp_path: Path, pki: Pki, mosquitto: MosquittoFactory, local_pki: LocalPki, previous: Path
) -> None:
    broker = mosquitto(tls=pki.broker_tls(require_certificate=True))
    good = _pki_bundle(tmp_path / "good", pki, broker.url)
    cert, key = local_pki.client(not_before=dt.timedelta(days=-400), not_after=dt.timedelta(-1))
    bad = _bundle(tmp_path / "bad", url=broker.url, ca=_pem(local_pki.cert), cert=cert, key=key)
    runner = CliRunner()

    refused = runner.invoke(app, ["provision", str(bad), "--config-dir", str(previous)])
    assert refused.exit_code == 78, refused.output
    assert "client.pem: expired on" in refused.output
    assert "Nothing was changed" in refused.output

    done = runner.invoke(app, ["provision", str(good), "--config-dir", str(previous)])
    assert done.exit_code == 0, done.output
    assert "hub-0042" in done.output
    assert "accepted this hub's identity" in done.output
    assert PATIENT not in done.output
    assert "s3cret" not in done.output
