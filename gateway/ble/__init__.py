"""Bluetooth LE: the backend chosen by configuration, the scanner and registry, per-device sessions."""
