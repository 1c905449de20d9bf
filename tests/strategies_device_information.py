"""Hypothesis strategies for the Device Information Service codecs."""

from __future__ import annotations

from hypothesis import strategies as st
from strategies import uint8, uint16, uint24

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

# Any encodable text (no lone surrogates); a trailing NUL is padding that decode drops.
texts = st.text(st.characters(codec="utf-8")).filter(lambda text: not text.endswith("\x00"))

reg_cert_entries = st.builds(RegCertData, uint8.map(AuthBody), uint8, st.binary(max_size=16))

STRATEGIES = {
    ManufacturerNameString: st.builds(ManufacturerNameString, texts),
    ModelNumberString: st.builds(ModelNumberString, texts),
    SerialNumberString: st.builds(SerialNumberString, texts),
    FirmwareRevisionString: st.builds(FirmwareRevisionString, texts),
    HardwareRevisionString: st.builds(HardwareRevisionString, texts),
    SoftwareRevisionString: st.builds(SoftwareRevisionString, texts),
    SystemId: st.builds(SystemId, st.integers(0, 2**40 - 1), uint24),
    RegulatoryCertificationDataList: st.lists(reg_cert_entries, max_size=4).map(
        lambda entries: RegulatoryCertificationDataList.from_entries(tuple(entries))
    ),
    PnpId: st.builds(PnpId, uint8.map(VendorIdSource), uint16, uint16, uint16),
}
