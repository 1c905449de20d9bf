"""The Vitalbridge home-hub daemon: BLE health devices in, validated readings out over MQTT."""
