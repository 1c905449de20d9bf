// The pairing page: sign in with the one-time code, add a device, list and remove devices.
"use strict";

const PROFILE_NAMES = {
  blood_pressure: "Blood pressure monitor",
  pulse_oximeter: "Pulse oximeter",
  weight_scale: "Weighing scale",
  body_composition: "Body composition scale",
  health_thermometer: "Thermometer",
  glucose: "Blood glucose meter",
  heart_rate: "Heart rate monitor",
};
const POLL_MS = 2000;

const $ = (id) => document.getElementById(id);
let pollTimer = null;

async function api(method, path, body) {
  const options = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  let data = {};
  try {
    data = await response.json();
  } catch (error) {
    data = {};
  }
  return { status: response.status, data };
}

function deviceName(device) {
  const kind = PROFILE_NAMES[device.profile] || "Health device";
  return device.name ? `${kind} (${device.name})` : kind;
}

function when(iso) {
  const date = new Date(iso);
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

function showSignIn(message) {
  $("sign-in").hidden = false;
  $("devices-page").hidden = true;
  $("code-error").textContent = message || "";
  $("code").focus();
}

async function showDevicesPage() {
  $("sign-in").hidden = true;
  $("devices-page").hidden = false;
  await loadDevices();
  await pollPairing();
}

async function signIn(event) {
  event.preventDefault();
  const code = $("code").value.trim();
  if (!/^[0-9]{6}$/.test(code)) {
    $("code-error").textContent = "Please enter the 6 numbers of the code.";
    $("code").focus();
    return;
  }
  const { status, data } = await api("POST", "/api/session", { code });
  if (status === 200) {
    $("code").value = "";
    $("code-error").textContent = "";
    await showDevicesPage();
    $("add").focus();
  } else if (status === 429) {
    const minutes = Math.max(1, Math.ceil((data.retry_after_s || 60) / 60));
    $("code-error").textContent =
      `Too many wrong codes. Please wait ${minutes} minute(s), then try again.`;
  } else {
    $("code-error").textContent =
      "That code is not right, or it has expired. Check the code and try again.";
    $("code").select();
  }
}

let lastRendered = null;

function renderDevices(devices) {
  // Polling must not rebuild an unchanged list: that would move keyboard focus and close an
  // open "Remove this device" question.
  const rendered = JSON.stringify(devices);
  if (rendered === lastRendered) {
    return;
  }
  lastRendered = rendered;
  const list = $("devices");
  list.replaceChildren();
  const count = devices.length === 0
    ? "No devices yet. Press Add a device to add one."
    : devices.length === 1 ? "1 device." : `${devices.length} devices.`;
  // Rewritten only on a change, so screen readers do not hear the same count at every poll.
  if ($("devices-status").textContent !== count) {
    $("devices-status").textContent = count;
  }
  if (devices.length === 0) {
    return;
  }
  const template = $("device-template");
  for (const device of devices) {
    const item = template.content.firstElementChild.cloneNode(true);
    const name = deviceName(device);
    item.dataset.deviceId = device.id;
    item.querySelector(".device-name").textContent = name;
    item.querySelector(".device-reading").textContent = device.last_reading_at
      ? `Last reading: ${when(device.last_reading_at)}`
      : "No reading yet";
    item.querySelector(".device-battery").textContent =
      device.battery_level === null || device.battery_level === undefined
        ? "Battery: not known"
        : `Battery: ${device.battery_level}%`;
    const remove = item.querySelector(".remove");
    const confirmBox = item.querySelector(".confirm");
    remove.setAttribute("aria-label", `Remove this device: ${name}`);
    if (device.configured) {
      // Devices from the configuration file are changed by support staff, not here.
      remove.hidden = true;
    }
    item.querySelector(".confirm-question").textContent =
      `Remove the ${name}? The hub will stop reading it until you add it again.`;
    remove.addEventListener("click", () => {
      $("devices-message").textContent = "";
      confirmBox.hidden = false;
      remove.hidden = true;
      item.querySelector(".confirm-no").focus();
    });
    item.querySelector(".confirm-no").addEventListener("click", () => {
      confirmBox.hidden = true;
      remove.hidden = false;
      remove.focus();
    });
    item.querySelector(".confirm-yes").addEventListener("click", () => removeDevice(device, name));
    list.append(item);
  }
}

async function loadDevices() {
  const { status, data } = await api("GET", "/api/devices");
  if (status === 401) {
    showSignIn("Please enter a new code.");
    return;
  }
  renderDevices(data.devices || []);
}

async function removeDevice(device, name) {
  const { status, data } = await api(
    "POST", `/api/devices/${encodeURIComponent(device.id)}/remove`, {});
  if (status === 401) {
    showSignIn("Please enter a new code.");
    return;
  }
  await loadDevices();
  $("devices-message").textContent =
    status === 200 ? `The ${name} has been removed.` : `Could not remove it: ${data.error || status}.`;
  $("list-title").focus();
}

function describePairing(state) {
  const found = state.found || [];
  const added = found.map(deviceName).join(", ");
  if (state.open) {
    const minutes = Math.max(1, Math.ceil((state.remaining_s || 0) / 60));
    const ask = found.length
      ? `Added: ${added}. To add another device, turn it on and take a measurement now.`
      : "Looking for your device. Turn it on and take a measurement now.";
    return `${ask} The hub keeps looking for about ${minutes} minute(s).`;
  }
  if (found.length) {
    return `Added: ${added}. It is now in your list of devices.`;
  }
  return "";
}

async function pollPairing() {
  clearTimeout(pollTimer);
  const { status, data } = await api("GET", "/api/pairing");
  if (status === 401) {
    showSignIn("Please enter a new code.");
    return;
  }
  const text = describePairing(data);
  if (text && $("pairing-status").textContent !== text) {
    $("pairing-status").textContent = text;
  } else if (!text && !data.open) {
    $("add").disabled = false;
  }
  if ((data.found || []).length) {
    await loadDevices();
  }
  if (data.open) {
    pollTimer = setTimeout(pollPairing, POLL_MS);
  } else {
    $("add").disabled = false;
    if (!(data.found || []).length && $("add").dataset.started === "yes") {
      $("pairing-status").textContent =
        "No new device was found. Press Add a device to try again.";
      $("add").dataset.started = "";
    }
  }
}

async function addDevice() {
  $("add").disabled = true;
  $("add").dataset.started = "yes";
  $("pairing-status").textContent = "Starting…";
  const { status, data } = await api("POST", "/api/pairing", {});
  if (status === 401) {
    showSignIn("Please enter a new code.");
    return;
  }
  if (status !== 202) {
    $("pairing-status").textContent = `The hub could not start: ${data.error || status}.`;
    $("add").disabled = false;
    return;
  }
  await pollPairing();
}

async function start() {
  $("code-form").addEventListener("submit", signIn);
  $("add").addEventListener("click", addDevice);
  $("list-title").tabIndex = -1;
  const { data } = await api("GET", "/api/session");
  if (data.signed_in) {
    await showDevicesPage();
  } else {
    showSignIn("");
  }
}

document.addEventListener("DOMContentLoaded", start);
