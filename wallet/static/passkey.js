// Passkey ceremonies for the wallet (wallet/devices/views.py). A button with data-passkey="register" or
// "authenticate" asks the server for options (JSON POST with the page's CSRF token), runs the WebAuthn
// ceremony, and posts the credential as JSON in the form named by data-form. No inline script (CSP); the
// sentences it shows come from the page (#passkey-messages).
"use strict";

function b64urlToBuffer(text) {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const padded = base64 + "===".slice((base64.length + 3) % 4);
  const binary = atob(padded);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes.buffer;
}

function bufferToB64url(buffer) {
  const bytes = new Uint8Array(buffer);
  let binary = "";
  for (let i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function credentialToJSON(credential) {
  const response = credential.response;
  const json = {
    id: credential.id,
    rawId: bufferToB64url(credential.rawId),
    type: credential.type,
    authenticatorAttachment: credential.authenticatorAttachment || undefined,
    clientExtensionResults: credential.getClientExtensionResults(),
    response: { clientDataJSON: bufferToB64url(response.clientDataJSON) },
  };
  if (response.attestationObject) {
    json.response.attestationObject = bufferToB64url(response.attestationObject);
    if (typeof response.getTransports === "function") json.response.transports = response.getTransports();
  } else {
    json.response.authenticatorData = bufferToB64url(response.authenticatorData);
    json.response.signature = bufferToB64url(response.signature);
    if (response.userHandle) json.response.userHandle = bufferToB64url(response.userHandle);
  }
  return json;
}

// The page's own words (#passkey-messages, a JSON data block in the page's language): no sentence here.
const catalogue = document.getElementById("passkey-messages");
const MESSAGES = catalogue ? JSON.parse(catalogue.textContent) : {};
const LANG = document.documentElement.getAttribute("lang") || "zh-CN";

function t(key) {
  return MESSAGES[key] || key;
}

// What the browser's refusal means for the citizen, and what to do next — never the browser's own message
// (English, with a W3C address in it).
function explain(error, ceremony) {
  const name = error && error.name;
  if (name === "ServerRefused") return error.message || t("server_refused");
  if (name === "NotAllowedError") return t("not_allowed");
  if (name === "AbortError") return t("cancelled");
  if (name === "InvalidStateError" && ceremony === "register") return t("already_registered");
  if (name === "SecurityError") return t("security");
  return t("failed");
}

async function runCeremony(button) {
  const form = document.getElementById(button.dataset.form);
  const status = document.getElementById(button.dataset.status);
  const say = (text) => { if (status) status.textContent = text; };
  if (!window.PublicKeyCredential) {
    say(t("unsupported"));
    if (status) status.focus();
    return;
  }
  button.disabled = true;
  say(t("follow_phone"));
  try {
    const answer = await fetch(button.dataset.optionsUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        "Accept-Language": LANG,  // error_description in the page's language
        "X-CSRF-Token": form.elements.csrf.value,
      },
      body: "{}",
    });
    const data = await answer.json();
    if (!answer.ok) {
      const refused = new Error(data.error_description || "");
      refused.name = "ServerRefused";
      throw refused;
    }
    const options = data.options;
    options.challenge = b64urlToBuffer(options.challenge);
    let credential;
    if (button.dataset.passkey === "register") {
      options.user.id = b64urlToBuffer(options.user.id);
      options.excludeCredentials = (options.excludeCredentials || []).map(
        (c) => ({ ...c, id: b64urlToBuffer(c.id) }));
      credential = await navigator.credentials.create({ publicKey: options });
    } else {
      options.allowCredentials = (options.allowCredentials || []).map(
        (c) => ({ ...c, id: b64urlToBuffer(c.id) }));
      credential = await navigator.credentials.get({ publicKey: options });
    }
    form.elements.ceremony.value = data.ceremony;
    form.elements.credential.value = JSON.stringify(credentialToJSON(credential));
    say(t("checking"));
    form.submit();
  } catch (error) {
    say(explain(error, button.dataset.passkey));
    button.disabled = false;
    // The button was disabled while the browser asked: the focus goes to the message, not the page's body.
    if (status) status.focus();
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("button[data-passkey]").forEach((button) => {
    button.addEventListener("click", () => runCeremony(button));
  });
});
