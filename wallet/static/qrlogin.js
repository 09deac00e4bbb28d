/*
 * QR scan-to-login, the computer's page (DESIGN.md §6; wallet/qrlogin/views.py).
 *
 * Long-polls the channel's state (waiting → scanned → approved | denied | expired) and says each step in an
 * aria-live region. On "approved" it collects the result with a JSON POST (the collection secret rides in
 * an HttpOnly cookie this script never sees) and follows the redirect the IdP answers.
 * No inline script (CSP script-src 'self'); the page's data-* attributes carry what it needs.
 */
(function () {
  "use strict";

  var root = document.getElementById("qr-login");
  if (!root) {
    return;
  }
  var statusUrl = root.getAttribute("data-status-url");
  var collectUrl = root.getAttribute("data-collect-url");
  var csrf = root.getAttribute("data-csrf");
  var code = document.getElementById("match-code").textContent.trim();
  var statusEl = document.getElementById("qr-status");
  var alertEl = document.getElementById("qr-alert");
  var restart = document.getElementById("qr-restart");
  var state = root.getAttribute("data-state") || "waiting";
  var failures = 0;

  var MESSAGES = {
    waiting: "Waiting for your phone… This code works for 2 minutes.",
    scanned: "Your phone opened the request. On the phone, pick " + code + " and approve with your passkey.",
    approved: "Approved on your phone. Logging you in…",
    denied: "The login was refused on the phone. Nobody was logged in.",
    expired: "This code has expired. Show a new code to try again.",
  };

  function say(text) {
    statusEl.textContent = text;
  }

  function end(text) {
    root.classList.add("qr-ended");
    if (text) {
      alertEl.textContent = text;
    }
    restart.hidden = false;
  }

  function show(next) {
    state = next;
    root.setAttribute("data-state", next);
    say(MESSAGES[next] || "");
    if (next === "denied" || next === "expired") {
      end("");
    }
  }

  function collect() {
    return fetch(collectUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: "{}",
    }).then(function (answer) {
      return answer.json().then(function (data) {
        if (answer.ok && data.redirect_to) {
          window.location.assign(data.redirect_to);
          return;
        }
        root.setAttribute("data-error", data.error || "error");
        end(data.error_description || "The login could not be finished. Please show a new code.");
      });
    });
  }

  function poll() {
    var url = statusUrl + (statusUrl.indexOf("?") < 0 ? "?" : "&") + "known=" + encodeURIComponent(state);
    fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then(function (answer) {
        return answer.json().then(function (data) {
          return { ok: answer.ok, status: answer.status, data: data };
        });
      })
      .then(function (result) {
        if (!result.ok) {
          if (result.status >= 500 || result.status === 429) {
            throw new Error("retry");
          }
          // The channel is gone or this browser may not watch it: nothing more will happen here.
          root.setAttribute("data-error", result.data.error || "error");
          show("expired");
          return;
        }
        failures = 0;
        if (result.data.state !== state) {
          show(result.data.state);
        }
        if (state === "approved") {
          collect();
        } else if (state === "waiting" || state === "scanned") {
          poll();
        }
      })
      .catch(function () {
        failures += 1;
        if (failures > 10) {
          end("The connection to the server was lost. Please show a new code.");
          return;
        }
        window.setTimeout(poll, Math.min(10000, 500 * failures));
      });
  }

  poll();
})();
