"""Device Information Service characteristics: who made the device and what it runs.

Field tables: GATT Specification Supplement (GSS) sections Manufacturer Name String (0x2A29),
Model Number String (0x2A24), Serial Number String (0x2A25), Firmware Revision String (0x2A26),
Hardware Revision String (0x2A27), Software Revision String (0x2A28), System ID (0x2A23;
Manufacturer Identifier uint40 + Organizationally Unique Identifier uint24 as in the GATT XML, the
two halves of the EUI-64 the current GSS names), IEEE 11073-20601 Regulatory Certification Data
List (0x2A2A) and PnP ID (0x2A50).

The six strings are GSS utf8s: the whole payload is the text, and an empty payload is the valid
empty string. Trailing NULs are padding, dropped on decode; text ending in NUL cannot be encoded.

The Regulatory Certification Data List is kept as sent. When it is a well-formed IEEE 11073-20601
RegCertDataList (MDER, big-endian: count uint16, length uint16, then per entry auth-body uint8,
auth-body-struc-type uint8, length uint16 and that many data bytes) its entries are parsed too;
when it is not, `entries` is None and a warning says why, since vendors fill this loosely.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final, Self

from device_profiles._enums import CodeEnum
from device_profiles._errors import DecodeError, EncodeError
from device_profiles._wire import Reader, Writer

__all__ = [
    "AuthBody",
    "FirmwareRevisionString",
    "HardwareRevisionString",
    "ManufacturerNameString",
    "ModelNumberString",
    "PnpId",
    "RegCertData",
    "RegulatoryCertificationDataList",
    "SerialNumberString",
    "SoftwareRevisionString",
    "SystemId",
    "VendorIdSource",
]

_OUI_SHIFT: Final = 40
_MAX_U16: Final = 0xFFFF
_LIST_FIELD: Final = "regulatory_certification_data_list"


def _read_text(reader: Reader, field: str) -> str:
    return reader.utf8_rest(field)


def _write_text(writer: Writer, text: str, field: str) -> None:
    if text.endswith("\x00"):
        # Decoding drops trailing NULs as padding, so this text could not come back unchanged.
        raise EncodeError(writer.characteristic, field, "text ends with a NUL character")
    try:
        writer.utf8(text)
    except UnicodeEncodeError as exc:
        raise EncodeError(writer.characteristic, field, "text is not encodable as UTF-8") from exc


@dataclass(frozen=True, slots=True)
class ManufacturerNameString:
    """Manufacturer Name String (0x2A29): the name of the device's manufacturer."""

    UUID: ClassVar[int] = 0x2A29
    NAME: ClassVar[str] = "Manufacturer Name String"
    LABEL: ClassVar[str] = "Manufacturer Name String (0x2A29)"

    manufacturer_name: str
    warnings: tuple[str, ...] = ()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode a Manufacturer Name String value (utf8s; empty is valid)."""
        reader = Reader(data, cls.LABEL)
        return cls(_read_text(reader, "manufacturer_name"), reader.finish())

    def encode(self) -> bytes:
        """Encode as a Manufacturer Name String value."""
        writer = Writer(self.LABEL)
        _write_text(writer, self.manufacturer_name, "manufacturer_name")
        return writer.bytes()


@dataclass(frozen=True, slots=True)
class ModelNumberString:
    """Model Number String (0x2A24): the model number the vendor assigned."""

    UUID: ClassVar[int] = 0x2A24
    NAME: ClassVar[str] = "Model Number String"
    LABEL: ClassVar[str] = "Model Number String (0x2A24)"

    model_number: str
    warnings: tuple[str, ...] = ()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode a Model Number String value (utf8s; empty is valid)."""
        reader = Reader(data, cls.LABEL)
        return cls(_read_text(reader, "model_number"), reader.finish())

    def encode(self) -> bytes:
        """Encode as a Model Number String value."""
        writer = Writer(self.LABEL)
        _write_text(writer, self.model_number, "model_number")
        return writer.bytes()


@dataclass(frozen=True, slots=True)
class SerialNumberString:
    """Serial Number String (0x2A25): the serial number of this device."""

    UUID: ClassVar[int] = 0x2A25
    NAME: ClassVar[str] = "Serial Number String"
    LABEL: ClassVar[str] = "Serial Number String (0x2A25)"

    serial_number: str
    warnings: tuple[str, ...] = ()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode a Serial Number String value (utf8s; empty is valid)."""
        reader = Reader(data, cls.LABEL)
        return cls(_read_text(reader, "serial_number"), reader.finish())

    def encode(self) -> bytes:
        """Encode as a Serial Number String value."""
        writer = Writer(self.LABEL)
        _write_text(writer, self.serial_number, "serial_number")
        return writer.bytes()


@dataclass(frozen=True, slots=True)
class FirmwareRevisionString:
    """Firmware Revision String (0x2A26): the revision of the firmware in the device."""

    UUID: ClassVar[int] = 0x2A26
    NAME: ClassVar[str] = "Firmware Revision String"
    LABEL: ClassVar[str] = "Firmware Revision String (0x2A26)"

    firmware_revision: str
    warnings: tuple[str, ...] = ()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode a Firmware Revision String value (utf8s; empty is valid)."""
        reader = Reader(data, cls.LABEL)
        return cls(_read_text(reader, "firmware_revision"), reader.finish())

    def encode(self) -> bytes:
        """Encode as a Firmware Revision String value."""
        writer = Writer(self.LABEL)
        _write_text(writer, self.firmware_revision, "firmware_revision")
        return writer.bytes()


@dataclass(frozen=True, slots=True)
class HardwareRevisionString:
    """Hardware Revision String (0x2A27): the revision of the hardware in the device."""

    UUID: ClassVar[int] = 0x2A27
    NAME: ClassVar[str] = "Hardware Revision String"
    LABEL: ClassVar[str] = "Hardware Revision String (0x2A27)"

    hardware_revision: str
    warnings: tuple[str, ...] = ()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode a Hardware Revision String value (utf8s; empty is valid)."""
        reader = Reader(data, cls.LABEL)
        return cls(_read_text(reader, "hardware_revision"), reader.finish())

    def encode(self) -> bytes:
        """Encode as a Hardware Revision String value."""
        writer = Writer(self.LABEL)
        _write_text(writer, self.hardware_revision, "hardware_revision")
        return writer.bytes()


@dataclass(frozen=True, slots=True)
class SoftwareRevisionString:
    """Software Revision String (0x2A28): the revision of the software in the device."""

    UUID: ClassVar[int] = 0x2A28
    NAME: ClassVar[str] = "Software Revision String"
    LABEL: ClassVar[str] = "Software Revision String (0x2A28)"

    software_revision: str
    warnings: tuple[str, ...] = ()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode a Software Revision String value (utf8s; empty is valid)."""
        reader = Reader(data, cls.LABEL)
        return cls(_read_text(reader, "software_revision"), reader.finish())

    def encode(self) -> bytes:
        """Encode as a Software Revision String value."""
        writer = Writer(self.LABEL)
        _write_text(writer, self.software_revision, "software_revision")
        return writer.bytes()


@dataclass(frozen=True, slots=True)
class SystemId:
    """System ID (0x2A23): a 40-bit manufacturer-defined identifier and the 24-bit IEEE OUI."""

    UUID: ClassVar[int] = 0x2A23
    NAME: ClassVar[str] = "System ID"
    LABEL: ClassVar[str] = "System ID (0x2A23)"

    manufacturer_identifier: int
    organizationally_unique_identifier: int
    warnings: tuple[str, ...] = ()

    @property
    def eui64(self) -> int:
        """The EUI-64 as a number: the OUI in the top 24 bits, the manufacturer part below."""
        return self.organizationally_unique_identifier << _OUI_SHIFT | self.manufacturer_identifier

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode a System ID value (fields in LSO-to-MSO order)."""
        reader = Reader(data, cls.LABEL)
        manufacturer_identifier = reader.uint(5, "manufacturer_identifier")
        oui = reader.u24("organizationally_unique_identifier")
        return cls(manufacturer_identifier, oui, reader.finish())

    def encode(self) -> bytes:
        """Encode as a System ID value."""
        writer = Writer(self.LABEL)
        writer.uint(self.manufacturer_identifier, 5, "manufacturer_identifier")
        writer.u24(self.organizationally_unique_identifier, "organizationally_unique_identifier")
        return writer.bytes()


class AuthBody(CodeEnum):
    """IEEE 11073-20601 AuthBody: who defined an entry's data; 3-253 and 255 are reserved."""

    EMPTY = 0
    IEEE_11073 = 1
    CONTINUA = 2
    EXPERIMENTAL = 254


@dataclass(frozen=True, slots=True)
class RegCertData:
    """One IEEE 11073-20601 RegCertData entry: the authorizing body, its structure type and data.

    For Continua (`AuthBody.CONTINUA`), structure type 1 is the continua-version-struct (IG
    version and certified device classes) and 2 the continua-reg-struct (regulation bit field).
    """

    auth_body: AuthBody
    auth_body_struc_type: int
    auth_body_data: bytes


@dataclass(frozen=True, slots=True)
class RegulatoryCertificationDataList:
    """IEEE 11073-20601 Regulatory Certification Data List (0x2A2A): certifications, as sent."""

    UUID: ClassVar[int] = 0x2A2A
    NAME: ClassVar[str] = "IEEE 11073-20601 Regulatory Certification Data List"
    LABEL: ClassVar[str] = "IEEE 11073-20601 Regulatory Certification Data List (0x2A2A)"

    regulatory_certification_data_list: bytes
    """The payload exactly as sent: the one source of truth, encoded back unchanged."""
    warnings: tuple[str, ...] = ()

    @property
    def entries(self) -> tuple[RegCertData, ...] | None:
        """The RegCertDataList entries, or None when the bytes are not a well-formed list."""
        return _parse_reg_cert_list(self.regulatory_certification_data_list, self.LABEL)[0]

    @classmethod
    def from_entries(cls, entries: tuple[RegCertData, ...]) -> Self:
        """Build the value holding `entries`, encoded as an MDER RegCertDataList."""
        return cls(_encode_reg_cert_list(entries, cls.LABEL))

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode the value; bytes that are not a RegCertDataList are kept, with a warning."""
        reader = Reader(data, cls.LABEL)
        raw = reader.rest()
        problem = _parse_reg_cert_list(raw, cls.LABEL)[1]
        if problem is not None:
            reader.warnings.append(f"{_LIST_FIELD}: not a well-formed RegCertDataList: {problem}")
        return cls(raw, reader.finish())

    def encode(self) -> bytes:
        """Encode as the value: the raw bytes, unchanged."""
        writer = Writer(self.LABEL)
        writer.raw(self.regulatory_certification_data_list)
        return writer.bytes()


def _swap16(value: int) -> int:
    # MDER integers are big-endian; the wire Reader and Writer are little-endian (GATT order).
    return (value & 0xFF) << 8 | value >> 8


def _parse_reg_cert_list(
    raw: bytes, label: str
) -> tuple[tuple[RegCertData, ...] | None, str | None]:
    """Parse an MDER RegCertDataList: its entries, or None and why it is not well-formed."""
    reader = Reader(raw, label)
    try:
        count = _swap16(reader.u16("count"))
        length = _swap16(reader.u16("length"))
        if length != reader.remaining:
            return None, f"length says {length} bytes of entries, {reader.remaining} follow"
        entries = []
        while reader.remaining:
            auth_body = AuthBody(reader.u8("auth_body"))
            struc_type = reader.u8("auth_body_struc_type")
            size = _swap16(reader.u16("auth_body_data_length"))
            entries.append(RegCertData(auth_body, struc_type, reader.take(size, "auth_body_data")))
    except DecodeError as exc:
        return None, f"{exc.field} at byte {exc.offset}: {exc.kind.value}"
    if count != len(entries):
        return None, f"count says {count} entries, {len(entries)} follow"
    return tuple(entries), None


def _encode_reg_cert_list(entries: tuple[RegCertData, ...], label: str) -> bytes:
    body = Writer(label)
    for entry in entries:
        body.u8(entry.auth_body, "auth_body")
        body.u8(entry.auth_body_struc_type, "auth_body_struc_type")
        _write_mder_u16(body, len(entry.auth_body_data), "auth_body_data_length")
        body.raw(entry.auth_body_data)
    content = body.bytes()
    writer = Writer(label)
    _write_mder_u16(writer, len(entries), "count")
    _write_mder_u16(writer, len(content), "length")
    writer.raw(content)
    return writer.bytes()


def _write_mder_u16(writer: Writer, value: int, field: str) -> None:
    if value > _MAX_U16:
        raise EncodeError(writer.characteristic, field, f"{value} does not fit in 16 bits")
    writer.u16(_swap16(value), field)


class VendorIdSource(CodeEnum):
    """Vendor ID Source of PnP ID (GSS 0x2A50); 0 and 3-255 are reserved."""

    BLUETOOTH_SIG = 1
    """The Vendor ID is a Bluetooth SIG assigned Company Identifier."""
    USB_IMPLEMENTERS_FORUM = 2
    """The Vendor ID is a USB Implementer's Forum assigned Vendor ID."""


@dataclass(frozen=True, slots=True)
class PnpId:
    """PnP ID (0x2A50): vendor, product and version numbers that identify the device model."""

    UUID: ClassVar[int] = 0x2A50
    NAME: ClassVar[str] = "PnP ID"
    LABEL: ClassVar[str] = "PnP ID (0x2A50)"

    vendor_id_source: VendorIdSource
    vendor_id: int
    product_id: int
    product_version: int
    warnings: tuple[str, ...] = ()

    @classmethod
    def decode(cls, data: bytes) -> Self:
        """Decode a PnP ID value (fields in LSO-to-MSO order)."""
        reader = Reader(data, cls.LABEL)
        source = VendorIdSource(reader.u8("vendor_id_source"))
        vendor_id = reader.u16("vendor_id")
        product_id = reader.u16("product_id")
        product_version = reader.u16("product_version")
        return cls(source, vendor_id, product_id, product_version, reader.finish())

    def encode(self) -> bytes:
        """Encode as a PnP ID value."""
        writer = Writer(self.LABEL)
        writer.u8(self.vendor_id_source, "vendor_id_source")
        writer.u16(self.vendor_id, "vendor_id")
        writer.u16(self.product_id, "product_id")
        writer.u16(self.product_version, "product_version")
        return writer.bytes()


CHARACTERISTICS: Final = (
    ManufacturerNameString,
    ModelNumberString,
    SerialNumberString,
    FirmwareRevisionString,
    HardwareRevisionString,
    SoftwareRevisionString,
    SystemId,
    RegulatoryCertificationDataList,
    PnpId,
)
"""The codec classes this module registers."""
