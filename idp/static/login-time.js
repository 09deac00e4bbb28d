/*
 * The login transaction's time limit on every login page (templates/login_time_limit.html; WCAG 2.2.1).
 *
 * Counts down from the seconds the server gave; from data-warn-before seconds before the end it shows a
 * warning in words ("This login ends in 2 minutes"), updated only when the words change, with a "More time"
 * button (a JSON POST with the page's CSRF token: the transaction gets its full time again). At the end it
 * says the login has ended, offers "Start again" (the same request to the service, a new login), points
 * the page's other login links there too, tells the page's own script (the "onecard:login-expired" event)
 * and moves the focus to the notice: nothing expires silently, nothing leads to a dead end.
 * Sentences come from the page (#login-time-messages). No inline script (CSP script-src 'self').
 */
(function () {
  "use strict";

  var box = document.getElementById("login-time");
  if (!box) {
    return;
  }
  var text = document.getElementById("login-time-text");
  var more = document.getElementById("login-more-time");
  var restart = document.getElementById("login-restart");
  var catalogue = document.getElementById("login-time-messages");
  var MESSAGES = catalogue ? JSON.parse(catalogue.textContent) : {};
  var LANG = document.documentElement.getAttribute("lang") || "zh-CN";
  var warnBefore = Number(box.getAttribute("data-warn-before") || 120);
  var deadline = Date.now() + Number(box.getAttribute("data-expires-in") || 0) * 1000;
  var ended = false;
  var timer = null;

  function t(key, values) {
    var message = MESSAGES[key] || key;
    return message.replace(/\{(\w+)\}/g, function (whole, name) {
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

  function say(message) {
    if (text.textContent !== message) {
      text.textContent = message;
    }
  }

  function expire() {
    ended = true;
    window.clearInterval(timer);
    box.hidden = false;
    more.hidden = true;
    restart.hidden = false;
    say(t("expired"));
    var restartUrl = box.getAttribute("data-restart-url");
    document.querySelectorAll("#choose-other, #other-way").forEach(function (link) {
      link.setAttribute("href", restartUrl);
    });
    document.dispatchEvent(new CustomEvent("onecard:login-expired", {detail: {restartUrl: restartUrl}}));
    text.focus();
  }

  function tick() {
    var left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
    if (left <= 0) {
      expire();
    } else if (left <= warnBefore) {
      box.hidden = false;
      more.hidden = false;
      say(t("warning", {time: duration(left)}));
    }
  }

  more.addEventListener("click", function () {
    more.disabled = true;
    fetch(box.getAttribute("data-extend-url"), {
      method: "POST",
      credentials: "same-origin",
      cache: "no-store",
      headers: {
        "Content-Type": "application/json",
        "Accept-Language": LANG,
        "X-CSRF-Token": box.getAttribute("data-extend-csrf") || ""
      },
      body: "{}"
    }).then(function (response) {
      return response.json().then(function (body) {
        more.disabled = false;
        if (!response.ok || typeof body.expires_in !== "number") {
          say(body.error_description || t("failed"));
          restart.hidden = false;
          text.focus();
          return;
        }
        deadline = Date.now() + body.expires_in * 1000;
        more.hidden = true;
        say(t("extended"));
        text.focus();  // the button hid itself: the focus goes to the news
      });
    }).catch(function () {
      more.disabled = false;
      say(t("failed"));
      restart.hidden = false;
      text.focus();
    });
  });

  timer = window.setInterval(function () {
    if (!ended) {
      tick();
    }
  }, 1000);
  tick();
}());
