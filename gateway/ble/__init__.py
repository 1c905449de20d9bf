"""Bluetooth LE: the backend chosen by configuration, scanner and registry, device sessions."""
