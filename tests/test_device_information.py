"""Device Information Service codecs against hand-built payloads from the GSS field tables.

Tables followed: GSS "Manufacturer Name String" (0x2A29), "Model Number String" (0x2A24), "Serial
Number String" (0x2A25), "Firmware Revision String" (0x2A26), "Hardware Revision String" (0x2A27),
"Software Revision String" (0x2A28): one utf8s field each; GATT XML "System ID" (0x2A23:
Manufacturer Identifier uint40, Organizationally Unique Identifier uint24, LSO first, with its
worked example); GSS "IEEE 11073-20601 Regulatory Certification Data List" (0x2A2A) with the IEEE
11073-20601 RegCertDataList (MDER, big-endian) and the Continua examples from HL7 PHD agents;
GATT XML "PnP ID" (0x2A50: Vendor ID Source 1/2, 0 and 3-255 RFU; Vendor ID; Product ID; Product
Version, all uint16).
"""

from __future__ import annotations

import pytest

import device_profiles
from device_profiles import DecodeError, EncodeError
from device_profiles.device_information import (
    AuthBody,
    FirmwareRevisionString,
    HardwareRevisionString,
    ManufacturerNameString,
    ModelNumberString,
    PnpId,
    RegCertData,
    RegulatoryCertificationDataList,
    SerialNumberString,
    SoftwareRevisionString,
    SystemId,
    VendorIdSource,
)

STRINGS = [
    (0x2A29, ManufacturerNameString, "manufacturer_name"),
    (0x2A24, ModelNumberString, "model_number"),
    (0x2A25, SerialNumberString, "serial_number"),
    (0x2A26, FirmwareRevisionString, "firmware_revision"),
    (0x2A27, HardwareRevisionString, "hardware_revision"),
    (0x2A28, SoftwareRevisionString, "software_revision"),
]
STRING_IDS = [cls.__name__ for _, cls, _ in STRINGS]


def _error(cls, data):
    with pytest.raises(DecodeError) as info:
        cls.decode(data)
    return info.value


# --- the six utf8s strings -----------------------------------------------------------------------


@pytest.mark.parametrize(("uuid", "cls", "field"), STRINGS, ids=STRING_IDS)
@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"UA-651BLE", "UA-651BLE"),
        (bytes([0x4D, 0xC3, 0xBC, 0x6C, 0x6C, 0x65, 0x72]), "Müller"),  # ü is C3 BC
        (bytes([0xE8, 0xA1, 0x80, 0xE5, 0x9C, 0xA7]), "血圧"),
        (b"A&D\x00\x00\x00", "A&D"),  # NUL padding of a fixed-size buffer
        (b"", ""),  # utf8s may be empty
        (b"\x00\x00", ""),
    ],
)
def test_string_decodes_utf8(uuid, cls, field, data, text):
    result = device_profiles.decode(uuid, data)
    assert result == cls(text)
    assert getattr(result, field) == text
    assert result.encode() == data.rstrip(b"\x00")


@pytest.mark.parametrize(("uuid", "cls", "field"), STRINGS, ids=STRING_IDS)
@pytest.mark.parametrize(
    ("data", "offset"),
    [
        (b"AB\xff", 2),  # 0xFF never occurs in UTF-8
        (b"M\xc3", 1),  # a two-byte sequence cut short
        (b"\xbc", 0),  # a continuation byte with no lead byte
        (b"ok\xed\xa0\x80", 2),  # an encoded surrogate
    ],
)
def test_string_invalid_utf8_is_invalid_value(uuid, cls, field, data, offset):
    error = _error(cls, data)
    assert (error.kind, error.field, error.offset) == ("invalid_value", field, offset)
    assert error.characteristic == cls.LABEL
    assert f"0x{uuid:04X}" in error.characteristic


@pytest.mark.parametrize(("uuid", "cls", "field"), STRINGS, ids=STRING_IDS)
@pytest.mark.parametrize("text", ["ends in NUL\x00", "lone surrogate \ud800"])
def test_string_that_cannot_round_trip_is_an_encode_error(uuid, cls, field, text):
    with pytest.raises(EncodeError) as info:
        cls(text).encode()
    assert info.value.field == field
    assert uuid == cls.UUID


def test_string_keeps_inner_nul():
    result = SerialNumberString.decode(b"A\x00B")
    assert result == SerialNumberString("A\x00B")
    assert result.encode() == b"A\x00B"


# --- System ID (0x2A23) --------------------------------------------------------------------------


def test_system_id_gatt_xml_example():
    """OUI 0x123456 and company-assigned 0x9ABCDE give System ID 0x123456FFFE9ABCDE."""
    data = bytes([0xDE, 0xBC, 0x9A, 0xFE, 0xFF, 0x56, 0x34, 0x12])
    result = device_profiles.decode("2A23", data)
    assert result == SystemId(0xFFFE9ABCDE, 0x123456)
    assert result.eui64 == 0x123456FFFE9ABCDE
    assert result.encode() == data


def test_system_id_extremes():
    assert SystemId.decode(bytes(8)) == SystemId(0, 0)
    assert SystemId.decode(bytes([0xFF] * 8)) == SystemId(2**40 - 1, 2**24 - 1)


@pytest.mark.parametrize(
    ("size", "kind", "field", "offset"),
    [
        (0, "empty", "manufacturer_identifier", 0),
        (3, "truncated", "manufacturer_identifier", 0),
        (5, "missing_field", "organizationally_unique_identifier", 5),
        (7, "truncated", "organizationally_unique_identifier", 5),
    ],
)
def test_system_id_short(size, kind, field, offset):
    error = _error(SystemId, bytes(range(1, 9))[:size])
    assert (error.kind, error.field, error.offset) == (kind, field, offset)


def test_system_id_trailing_bytes_are_a_warning():
    assert SystemId.decode(bytes(9)) == SystemId(
        0, 0, ("1 trailing byte(s) after the last field ignored",)
    )


@pytest.mark.parametrize(
    ("value", "field"),
    [
        (SystemId(2**40, 0), "manufacturer_identifier"),
        (SystemId(0, 2**24), "organizationally_unique_identifier"),
        (SystemId(-1, 0), "manufacturer_identifier"),
    ],
)
def test_system_id_out_of_range(value, field):
    with pytest.raises(EncodeError) as info:
        value.encode()
    assert info.value.field == field


# --- IEEE 11073-20601 Regulatory Certification Data List (0x2A2A) --------------------------------

# Continua version struct: IG 1.5, one certified device class 0x8008; MDER (big-endian).
VERSION_DATA = bytes([0x01, 0x05, 0x00, 0x01, 0x00, 0x02, 0x80, 0x08])
ONE_ENTRY = bytes([0x00, 0x01, 0x00, 0x0C, 0x02, 0x01, 0x00, 0x08]) + VERSION_DATA
# Continua version struct (weighing scale class 0x200F) then reg struct (unregulated, 0x0000).
TWO_ENTRIES = (
    bytes([0x00, 0x02, 0x00, 0x12])
    + bytes([0x02, 0x01, 0x00, 0x08, 0x01, 0x05, 0x00, 0x01, 0x00, 0x02, 0x20, 0x0F])
    + bytes([0x02, 0x02, 0x00, 0x02, 0x00, 0x00])
)


def test_reg_cert_one_continua_entry():
    result = device_profiles.decode("2A2A", ONE_ENTRY)
    assert result == RegulatoryCertificationDataList(ONE_ENTRY)
    assert result.entries == (RegCertData(AuthBody.CONTINUA, 1, VERSION_DATA),)
    assert result.encode() == ONE_ENTRY


def test_reg_cert_two_continua_entries():
    result = RegulatoryCertificationDataList.decode(TWO_ENTRIES)
    assert result == RegulatoryCertificationDataList(TWO_ENTRIES)
    assert result.entries == (
        RegCertData(AuthBody.CONTINUA, 1, bytes([0x01, 0x05, 0x00, 0x01, 0x00, 0x02, 0x20, 0x0F])),
        RegCertData(AuthBody.CONTINUA, 2, bytes([0x00, 0x00])),
    )


def test_reg_cert_empty_list():
    result = RegulatoryCertificationDataList.decode(bytes(4))
    assert result == RegulatoryCertificationDataList(bytes(4))
    assert result.entries == ()


@pytest.mark.parametrize(
    ("code", "member"),
    [
        (0, AuthBody.EMPTY),
        (1, AuthBody.IEEE_11073),
        (2, AuthBody.CONTINUA),
        (254, AuthBody.EXPERIMENTAL),
    ],
)
def test_reg_cert_every_auth_body(code, member):
    data = bytes([0x00, 0x01, 0x00, 0x05, code, 0x07, 0x00, 0x01, 0xAA])
    result = RegulatoryCertificationDataList.decode(data)
    assert result.entries == (RegCertData(member, 7, b"\xaa"),)
    assert result.warnings == ()


@pytest.mark.parametrize("code", [3, 100, 253, 255])
def test_reg_cert_reserved_auth_body_is_kept(code):
    data = bytes([0x00, 0x01, 0x00, 0x04, code, 0x01, 0x00, 0x00])
    result = RegulatoryCertificationDataList.decode(data)
    assert result.entries is not None
    (entry,) = result.entries
    assert entry.auth_body == code
    assert entry.auth_body.is_reserved
    assert result.warnings == ()


PREFIX = "regulatory_certification_data_list: not a well-formed RegCertDataList: "


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "count at byte 0: empty"),
        (b"\x00", "count at byte 0: truncated"),
        (b"\x00\x01", "length at byte 2: missing_field"),
        (b"\x00\x01\x00", "length at byte 2: truncated"),
        # count 2, one entry
        (bytes([0x00, 0x02]) + ONE_ENTRY[2:], "count says 2 entries, 1 follow"),
        # length 13, 12 bytes follow
        (ONE_ENTRY[:3] + b"\x0d" + ONE_ENTRY[4:], "length says 13 bytes of entries, 12 follow"),
        # length 11 but 12 bytes follow (a vendor's stray byte)
        (ONE_ENTRY[:3] + b"\x0b" + ONE_ENTRY[4:], "length says 11 bytes of entries, 12 follow"),
        # entry data length 9 with 8 bytes left
        (
            ONE_ENTRY[:6] + b"\x00\x09" + VERSION_DATA,
            "auth_body_data at byte 8: truncated",
        ),
        # entry header cut after the structure type
        (
            bytes([0x00, 0x01, 0x00, 0x03, 0x02, 0x01, 0x00]),
            "auth_body_data_length at byte 6: truncated",
        ),
        # entries begin with only the auth-body byte
        (bytes([0x00, 0x01, 0x00, 0x01, 0x02]), "auth_body_struc_type at byte 5: missing_field"),
        # a vendor's free text instead of a list
        (b"FDA 510(k)", "length says 16672 bytes of entries, 6 follow"),
    ],
)
def test_reg_cert_malformed_is_kept_with_a_warning(data, problem):
    result = RegulatoryCertificationDataList.decode(data)
    assert result == RegulatoryCertificationDataList(data, (PREFIX + problem,))
    assert result.entries is None
    assert result.encode() == data


def test_reg_cert_from_entries_builds_mder():
    result = RegulatoryCertificationDataList.from_entries(
        (RegCertData(AuthBody.CONTINUA, 1, VERSION_DATA),)
    )
    assert result == RegulatoryCertificationDataList(ONE_ENTRY)
    assert result.encode() == ONE_ENTRY
    assert RegulatoryCertificationDataList.from_entries(()).encode() == bytes(4)


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        (RegCertData(AuthBody.CONTINUA, 256, b""), "auth_body_struc_type"),
        (RegCertData(AuthBody(256), 1, b""), "auth_body"),
        (RegCertData(AuthBody.CONTINUA, 1, bytes(0x10000)), "auth_body_data_length"),
    ],
)
def test_reg_cert_from_entries_out_of_range(entry, field):
    with pytest.raises(EncodeError) as info:
        RegulatoryCertificationDataList.from_entries((entry,))
    assert info.value.field == field


def test_reg_cert_from_entries_too_long_overall():
    entries = (RegCertData(AuthBody.CONTINUA, 1, bytes(0xFFFF)),)
    with pytest.raises(EncodeError) as info:
        RegulatoryCertificationDataList.from_entries(entries)
    assert info.value.field == "length"


# --- PnP ID (0x2A50) -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "source"),
    [(1, VendorIdSource.BLUETOOTH_SIG), (2, VendorIdSource.USB_IMPLEMENTERS_FORUM)],
)
def test_pnp_id_every_vendor_id_source(code, source):
    # Vendor ID 0x0059, Product ID 0x1234, Product Version 0x0110; fields LSO first.
    data = bytes([code, 0x59, 0x00, 0x34, 0x12, 0x10, 0x01])
    result = device_profiles.decode("2A50", data)
    assert result == PnpId(source, 0x0059, 0x1234, 0x0110)
    assert result.encode() == data


@pytest.mark.parametrize("code", [0, 3, 0xFF])
def test_pnp_id_reserved_vendor_id_source_is_kept(code):
    data = bytes([code, 0xFF, 0xFF, 0x00, 0x00, 0x01, 0x00])
    result = PnpId.decode(data)
    assert result == PnpId(VendorIdSource(code), 0xFFFF, 0, 1)
    assert result.vendor_id_source.is_reserved
    assert result.encode() == data


@pytest.mark.parametrize(
    ("size", "kind", "field", "offset"),
    [
        (0, "empty", "vendor_id_source", 0),
        (1, "missing_field", "vendor_id", 1),
        (2, "truncated", "vendor_id", 1),
        (3, "missing_field", "product_id", 3),
        (4, "truncated", "product_id", 3),
        (5, "missing_field", "product_version", 5),
        (6, "truncated", "product_version", 5),
    ],
)
def test_pnp_id_short(size, kind, field, offset):
    error = _error(PnpId, bytes([0x01, 0x59, 0x00, 0x34, 0x12, 0x10, 0x01])[:size])
    assert (error.kind, error.field, error.offset) == (kind, field, offset)


def test_pnp_id_trailing_bytes_are_a_warning():
    data = bytes([0x01, 0x59, 0x00, 0x34, 0x12, 0x10, 0x01, 0xEE])
    assert PnpId.decode(data) == PnpId(
        VendorIdSource.BLUETOOTH_SIG,
        0x0059,
        0x1234,
        0x0110,
        ("1 trailing byte(s) after the last field ignored",),
    )


@pytest.mark.parametrize(
    ("value", "field"),
    [
        (PnpId(VendorIdSource(256), 0, 0, 0), "vendor_id_source"),
        (PnpId(VendorIdSource.BLUETOOTH_SIG, 0x10000, 0, 0), "vendor_id"),
        (PnpId(VendorIdSource.BLUETOOTH_SIG, 0, -1, 0), "product_id"),
        (PnpId(VendorIdSource.BLUETOOTH_SIG, 0, 0, 0x10000), "product_version"),
    ],
)
def test_pnp_id_out_of_range(value, field):
    with pytest.raises(EncodeError) as info:
        value.encode()
    assert info.value.field == field
