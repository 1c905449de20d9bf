"""Virtual Bluetooth LE health devices that are real GATT servers on a simulated radio (Bumble)."""
