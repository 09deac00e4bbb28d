/*
 * QR scan-to-login, the computer's page (DESIGN.md §6; wallet/qrlogin/views.py).
 *
 * Long-polls the channel's state (waiting → scanned → approved | denied | expired) and says each step in an
 * aria-live region. On "approved" it collects the result with a JSON POST (the collection secret rides in
 * an HttpOnly cookie this script never sees) and follows the redirect the IdP answers.
 * No inline script (CSP script-src 'self'); the page's data-* attributes carry what it needs, and its
 * sentences come from the page (#qr-login-messages, in the page's language).
 *
 * The code's time limit (2 minutes) is said in words and counted down ("1 minute", then seconds in steps of
 * ten), announced only when the words change; from 30 seconds before the end the page says time is short
 * and offers "Show a new code" at once; at the end it says so and moves the focus to that button. Nothing
 * expires silently.
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
  var SHORT = 30;  // seconds: from here the page warns and offers a new code
  var LANG = document.documentElement.getAttribute("lang") || "zh-CN";
  var catalogue = document.getElementById("qr-login-messages");
  var MESSAGES = catalogue ? JSON.parse(catalogue.textContent) : {};
  var deadline = Date.now() + Number(root.getAttribute("data-lifetime") || 120) * 1000;
  var timer = null;
  var ended = false;

  function t(key, values) {
    var text = MESSAGES[key] || key;
    return text.replace(/\{(\w+)\}/g, function (whole, name) {
      return values && values[name] !== undefined ? String(values[name]) : whole;
    });
  }

  function duration(seconds) {
    if (seconds >= 60) {
      var minutes = Math.floor((seconds + 30) / 60);  // to the nearest minute
      return minutes === 1 ? t("minutes_one") : t("minutes_other", {count: minutes});
    }
    var rounded = seconds > 10 ? Math.ceil(seconds / 10) * 10 : Math.max(1, Math.ceil(seconds));
    return rounded === 1 ? t("seconds_one") : t("seconds_other", {count: rounded});
  }

  function say(text) {
    if (statusEl.textContent !== text) {
      statusEl.textContent = text;  // only when the words change: the live region is not chatty
    }
  }

  function secondsLeft() {
    return Math.max(0, Math.round((deadline - Date.now()) / 1000));
  }

  /* While the code waits for the phone: how long it still works, in words. */
  function sayWaiting() {
    var left = secondsLeft();
    if (left <= 0) {
      show("expired");
      return;
    }
    if (left <= SHORT) {
      restart.hidden = false;
      say(t("waiting_short", {time: duration(left)}));
    } else {
      say(t("waiting", {time: duration(left)}));
    }
  }

  function end(text) {
    ended = true;
    root.classList.add("qr-ended");
    if (timer !== null) {
      window.clearInterval(timer);
      timer = null;
    }
    if (text) {
      alertEl.textContent = text;
    }
    restart.hidden = false;
    restart.focus();  // the one thing left to do: never the page's body
  }

  function show(next) {
    state = next;
    root.setAttribute("data-state", next);
    if (next === "waiting") {
      sayWaiting();
    } else {
      say(t(next, {code: code}));
    }
    if ((next === "denied" || next === "expired") && !ended) {
      end("");
    }
  }

  function collect() {
    return fetch(collectUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept-Language": LANG, "X-CSRF-Token": csrf },
      body: "{}",
    }).then(function (answer) {
      return answer.json().then(function (data) {
        if (answer.ok && data.redirect_to) {
          window.location.assign(data.redirect_to);
          return;
        }
        root.setAttribute("data-error", data.error || "error");
        end(data.error_description || t("collect_failed"));
      });
    });
  }

  function poll() {
    var url = statusUrl + (statusUrl.indexOf("?") < 0 ? "?" : "&") + "known=" + encodeURIComponent(state);
    fetch(url, { credentials: "same-origin", cache: "no-store", headers: { "Accept-Language": LANG } })
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
        if (typeof result.data.expires_in === "number") {
          deadline = Date.now() + result.data.expires_in * 1000;  // the server's clock decides
        }
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
          end(t("connection_lost"));
          return;
        }
        window.setTimeout(poll, Math.min(10000, 500 * failures));
      });
  }

  timer = window.setInterval(function () {
    if (state === "waiting") {
      sayWaiting();
    } else if (state === "scanned" && secondsLeft() <= 0) {
      show("expired");
    }
  }, 1000);
  sayWaiting();
  poll();
})();
