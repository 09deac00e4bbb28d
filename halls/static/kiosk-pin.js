// The kiosk's "Change my PIN" page: it asks the reader bridge for POST /v1/change-pin and follows the
// operation's events (as card-login.js does for a login); the bridge's own PIN window or PIN pad takes
// the old and new PIN, so this page only says, in words, what happens and how it ended.
(function () {
  "use strict";
  var root = document.getElementById("kiosk-pin");
  if (!root) { return; }
  var bridge = (root.dataset.bridgeUrl || "http://127.0.0.1:47400").replace(/\/+$/, "");
  var LANG = document.documentElement.getAttribute("lang") || "zh-CN";
  var MESSAGES = JSON.parse(document.getElementById("kiosk-pin-messages").textContent);
  var statusEl = document.getElementById("kiosk-pin-status");
  var alertEl = document.getElementById("kiosk-pin-alert");
  var triesEl = document.getElementById("kiosk-pin-tries");
  var pinLink = document.getElementById("pin-link");
  var startButton = document.getElementById("kiosk-pin-start");

  function t(key, count) { return MESSAGES[key].replace("{count}", String(count)); }

  function ask(path, options) {
    return window.fetch(bridge + path, Object.assign({ cache: "no-store" }, options || {}))
      .then(function (answer) {
        return answer.json().catch(function () { return {}; }).then(function (body) {
          return { ok: answer.ok, body: body };
        });
      });
  }

  function handle(event) {
    if (event.type === "enter_pin") {
      statusEl.textContent = event.pinpad ? t("enter_pin_pad") : t("enter_pin");
      triesEl.textContent = t("tries_left", event.tries_left);
      if (event.pin_url) {
        pinLink.href = event.pin_url + (event.pin_url.indexOf("?") < 0 ? "?" : "&") + "lang=" + encodeURIComponent(LANG);
        pinLink.hidden = false;
        if (!event.extended) { pinLink.focus(); }
      }
    } else if (event.type === "pin_wrong") {
      alertEl.textContent = t("pin_wrong", event.tries_left);
      triesEl.textContent = t("tries_left", event.tries_left);
    }
  }

  // Resolves with the outcome's message key once the operation is done or failed.
  function follow(operationId, after) {
    return ask("/v1/operations/" + operationId + "/events?after=" + after + "&wait=20").then(function (answer) {
      if (!answer.ok) { return answer.body.error === "card_blocked" ? "blocked" : "failed"; }
      var events = answer.body.events || [];
      for (var i = 0; i < events.length; i += 1) {
        var event = events[i];
        after = event.seq;
        if (event.type === "done") { return event.result && event.result.changed === true ? "changed" : "failed"; }
        if (event.type === "error" || event.type === "card_blocked") {
          if (event.type === "card_blocked" || event.error === "card_blocked") { return "blocked"; }
          return event.error === "card_removed" || event.error === "no_card" ? "card_removed" : "failed";
        }
        handle(event);
      }
      return follow(operationId, after);
    });
  }

  startButton.addEventListener("click", function () {
    startButton.hidden = true;
    alertEl.textContent = "";
    triesEl.textContent = "";
    statusEl.textContent = t("working");
    ask("/v1/change-pin", { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" })
      .then(function (answer) {
        if (!answer.ok) { return answer.body.error === "card_blocked" ? "blocked" : "failed"; }
        return follow(answer.body.operation_id, 0);
      }, function () { return "unreachable"; })
      .catch(function () { return "unreachable"; })
      .then(function (outcome) {
        pinLink.hidden = true;
        statusEl.textContent = "";
        alertEl.textContent = t(outcome);
        alertEl.focus();
        startButton.hidden = outcome === "changed" || outcome === "blocked";
      });
  });
}());
