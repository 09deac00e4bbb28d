// The kiosk pages' idle limit (WCAG 2.2.1: a warning and "More time" before the page ends the visit), the
// card watch (the bridge's kiosk profile answers GET /v1/kiosk/card once the card is pulled: the visit ends)
// and their memory: the page replaces its history entry, so "Back" never shows the previous citizen.
(function () {
  "use strict";
  var root = document.getElementById("kiosk");
  if (!root) { return; }
  window.history.replaceState(null, "", window.location.href);
  // A page shown after the visit ended (the card reported lost): back to the start after a while, or as
  // soon as the card is out, so the next citizen never finds it.
  var returnAfter = parseInt(root.dataset.returnAfter, 10);
  if (returnAfter > 0) {
    var toStart = function () { window.location.replace(root.dataset.startUrl); };
    window.setTimeout(toStart, returnAfter * 1000);
    watchCard(toStart);
    return;
  }
  if (root.dataset.visit !== "yes") { return; }
  var idle = Math.max(5, parseInt(root.dataset.idle, 10) || 90);
  var warnAt = Math.max(2, Math.floor(idle * 0.25));
  var warning = document.getElementById("idle-warning");
  var moreTime = document.getElementById("more-time");
  var warnTimer = null;
  var endTimer = null;

  function endVisit() {
    var form = document.createElement("form");
    form.method = "post";
    form.action = root.dataset.endUrl;
    document.body.innerHTML = "";  // nothing of the citizen stays on screen while the request runs
    document.body.appendChild(form);
    form.submit();
  }

  function arm() {
    window.clearTimeout(warnTimer);
    window.clearTimeout(endTimer);
    warning.hidden = true;
    warnTimer = window.setTimeout(function () {
      warning.hidden = false;
      moreTime.focus();
    }, (idle - warnAt) * 1000);
    endTimer = window.setTimeout(endVisit, idle * 1000 - 500);
  }

  // Long poll: the bridge answers when the card is no longer in the reader, or after `wait` seconds.
  // 404 means a bridge without the kiosk profile (nothing to watch); other failures retry shortly.
  function watchCard(onCardOut) {
    var bridge = root.dataset.bridgeUrl;
    if (!bridge) { return; }
    var again = function () { watchCard(onCardOut); };
    window.fetch(bridge + "/v1/kiosk/card?present=true&wait=20", { cache: "no-store" })
      .then(function (answer) {
        if (answer.status === 404) { return null; }
        if (!answer.ok) { throw new Error("bridge answered " + answer.status); }
        return answer.json();
      })
      .then(function (body) {
        if (body === null) { return; }
        if (body.card_present === false) { onCardOut(); } else { again(); }
      })
      .catch(function () { window.setTimeout(again, 2000); });
  }

  moreTime.addEventListener("click", function () {
    var body = new URLSearchParams();
    body.set("csrf", root.dataset.csrf);
    window.fetch(root.dataset.moreTimeUrl, { method: "POST", body: body, credentials: "same-origin" })
      .then(function (answer) { if (answer.status === 204) { arm(); } else { endVisit(); } })
      .catch(endVisit);
  });
  ["keydown", "pointerdown", "touchstart"].forEach(function (name) {
    document.addEventListener(name, function (event) {
      if (event.target !== moreTime && warning.hidden) { arm(); }
    }, { passive: true });
  });
  arm();
  watchCard(endVisit);
}());
