/*
 * Card + PIN login and PIN change through the OneCard reader bridge (DESIGN.md §4).
 *
 * Login: the page asks the IdP for a challenge and hands it to the bridge on 127.0.0.1 (the bridge takes
 * this page's origin from the browser's Origin header), asking it to stop once it has read the card
 * (card_check). When the bridge reports the card's certificate (card_read), the page asks the IdP whether
 * this card can log in here at all, and only on "usable" lets the bridge go on to the PIN (continue) —
 * so a foreign, unregistered or lost card is told so before anyone types a PIN. The IdP checks everything
 * again when the page posts the card-auth token at the end; the pre-check is a convenience.
 *
 * The PIN is never typed here: the bridge's own PIN window (another origin) or the reader's keypad takes
 * it. A page that is left (pagehide) or whose Cancel button is pressed cancels its bridge operation, so the
 * bridge is free for the next page at once.
 *
 * No inline script (CSP script-src 'self'); everything the page needs is in data-* attributes of
 * #card-login, and every sentence it shows comes from the page's own catalogue (#card-login-messages, a
 * JSON data block in the page's language): none is written here. The IdP and the bridge are asked in the
 * page's language (Accept-Language), and so is the bridge's PIN window (?lang=).
 *
 * Status lines go to an aria-live region; errors to a role=alert region, which also takes the focus; after
 * Cancel or Try again the focus goes to the new status line, never back to the page's body. The PIN
 * window's time limit is counted down in words ("1 minute"), announced only when the words change.
 */
(function () {
  "use strict";

  var root = document.getElementById("card-login");
  if (!root) {
    return;
  }
  var mode = root.getAttribute("data-mode") || "login";
  var bridge = (root.getAttribute("data-bridge-url") || "http://127.0.0.1:47400").replace(/\/+$/, "");
  var BUSY_CHECKS = 40;  // while the bridge finishes another operation: re-check every 0.5 s, 20 s in all
  var PIN_TIME_WARNING = 30;  // seconds: from here the PIN line says time is short
  var LANG = document.documentElement.getAttribute("lang") || "zh-CN";
  var catalogue = document.getElementById("card-login-messages");
  var MESSAGES = catalogue ? JSON.parse(catalogue.textContent) : {};

  /* A sentence of the page's catalogue, with {name} filled in. */
  function t(key, values) {
    var text = MESSAGES[key] || key;
    return text.replace(/\{(\w+)\}/g, function (whole, name) {
      return values && values[name] !== undefined ? String(values[name]) : whole;
    });
  }

  /* How long, in words: to the nearest minute while a minute or more is left, then seconds in steps of ten (so a
     live region speaks a few times, not every second). */
  function duration(seconds) {
    if (seconds >= 60) {
      var minutes = Math.floor((seconds + 30) / 60);  // to the nearest minute
      return minutes === 1 ? t("minutes_one") : t("minutes_other", {count: minutes});
    }
    var rounded = seconds > 10 ? Math.ceil(seconds / 10) * 10 : Math.max(1, Math.ceil(seconds));
    return rounded === 1 ? t("seconds_one") : t("seconds_other", {count: rounded});
  }

  var BLOCKED = t("blocked");
  var OTHER_WAY = t("other_way");

  function el(id) {
    return document.getElementById(id);
  }
  var statusEl = el("status");
  var triesEl = el("tries");
  var alertEl = el("alert");
  var nextStep = el("next-step");
  var nextStepText = el("next-step-text");
  var pinWindow = el("pin-window");
  var pinLink = el("pin-link");
  var startButton = el("start");
  var retryButton = el("retry");
  var cancelButton = el("cancel");
  var noBridge = el("no-bridge");
  var pinTimeEl = el("pin-time");
  var pinTimer = null;
  var busy = false;
  var currentOperation = null;  // the bridge operation this page started and has not seen end
  var cancelRequested = false;
  var expired = false;  // the login transaction's time is over: nothing more starts here

  function say(text) {
    statusEl.textContent = text;
  }

  /* Put the focus on a message that just changed (after Cancel, Try again or a time-out), so keyboard and
     screen-reader users are where the news is. */
  function focusOn(element) {
    if (element && typeof element.focus === "function") {
      element.focus();
    }
  }

  function warn(text) {
    alertEl.textContent = text || "";
    alertEl.hidden = !text;
  }

  function showNextStep(text) {
    if (!nextStep) {
      return;
    }
    nextStepText.textContent = text || "";
    nextStep.hidden = !text;
  }

  /* Tries left before the card blocks; never "0 tries": at 0 the card is blocked, and only that is said. */
  function showTries(count) {
    if (typeof count !== "number" || count < 1) {
      triesEl.hidden = true;
      return;
    }
    triesEl.textContent = count === 1 ? t("tries_one") : t("tries_other", {count: count});
    triesEl.hidden = false;
  }

  /* The PIN window's time limit (the bridge's enter_pin event says how long it stays open). */
  function stopPinTime() {
    if (pinTimer !== null) {
      window.clearInterval(pinTimer);
      pinTimer = null;
    }
    if (pinTimeEl) {
      pinTimeEl.hidden = true;
      pinTimeEl.textContent = "";
      pinTimeEl.classList.remove("short");
    }
  }

  function startPinTime(seconds) {
    stopPinTime();
    if (!pinTimeEl || typeof seconds !== "number" || seconds <= 0) {
      return;
    }
    var deadline = Date.now() + seconds * 1000;
    function tick() {
      var left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
      var text;
      if (left <= 0) {
        text = t("pin_time_over");
      } else if (left <= PIN_TIME_WARNING) {
        text = t("pin_time_short", {time: duration(left)});
      } else {
        text = t("pin_time", {time: duration(left)});
      }
      pinTimeEl.classList.toggle("short", left <= PIN_TIME_WARNING);
      if (pinTimeEl.textContent !== text) {
        pinTimeEl.textContent = text;  // only when the words change: the live region is not chatty
      }
      if (left <= 0 && pinTimer !== null) {
        window.clearInterval(pinTimer);
        pinTimer = null;
      }
    }
    pinTimeEl.hidden = false;
    tick();
    pinTimer = window.setInterval(tick, 1000);
  }

  var STEPS = ["step-card", "step-pin", "step-done"];

  function step(current) {
    var reached = false;
    STEPS.forEach(function (id) {
      var item = el(id);
      if (!item) {
        return;
      }
      if (id === current) {
        item.setAttribute("aria-current", "step");
        item.classList.remove("done");
        reached = true;
      } else {
        item.removeAttribute("aria-current");
        item.classList.toggle("done", !reached && current !== null);
      }
    });
  }

  function hidePinWindow() {
    pinWindow.hidden = true;
    pinLink.setAttribute("href", "#");
    stopPinTime();
  }

  /* The bridge's PIN window in the page's language. */
  function withLang(url) {
    return url + (url.indexOf("?") < 0 ? "?" : "&") + "lang=" + encodeURIComponent(LANG);
  }

  function showBlocked() {
    showTries(null);
    hidePinWindow();
    warn(BLOCKED);
    alertEl.focus();
  }

  /* What went wrong and what the citizen can do next. retry: offer "Try again"; nextStep: a line shown
     with the link to the other ways of logging in; outcome: how a PIN change ended, in the words of the
     onecard:pin-change-ended event (below). */
  function Failure(message, options) {
    this.message = message;
    this.options = options || {};
  }

  /* The bridge's refusals, told by their code in the page's words (the bridge's own description is
     English and for its log). */
  function fromBridge(body) {
    body = body || {};
    if (body.error === "card_blocked") {
      return new Failure(BLOCKED, {retry: false, nextStep: t("meanwhile_other_way"), outcome: "blocked"});
    }
    var words = MESSAGES.bridge || {};
    var removed = body.error === "card_removed" || body.error === "no_card";
    return new Failure(words[body.error] || t("card_failed"), {
      nextStep: OTHER_WAY, outcome: removed ? "card_removed" : "failed"
    });
  }

  function fromIdp(body, fallback) {
    body = body || {};
    if (body.error === "invalid_card_auth") {
      // The server refused the card's answer (for instance its signature): a second try usually works.
      return new Failure(t("invalid_card_auth"), {nextStep: OTHER_WAY});
    }
    return new Failure(body.error_description || fallback, {nextStep: OTHER_WAY});
  }

  function fail(failure) {
    var options = failure.options;
    busy = false;
    hidePinWindow();
    showTries(null);
    step(null);
    cancelButton.hidden = true;
    startButton.hidden = true;
    say(mode === "login" ? t("login_failed") : t("pin_not_changed"));
    warn(failure.message);
    showNextStep(options.nextStep);
    retryButton.hidden = options.retry === false;
    alertEl.focus();
  }

  function readJson(response) {
    return response.json().catch(function () {
      return {};
    });
  }

  /* A POST to the IdP: JSON, with the page's CSRF token; resolves to {ok, status, body}. */
  function idpPost(url, data) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      cache: "no-store",
      headers: {
        "Content-Type": "application/json",
        "Accept-Language": LANG,  // error_description in the page's language
        "X-CSRF-Token": root.getAttribute("data-csrf") || ""
      },
      body: JSON.stringify(data)
    }).then(function (response) {
      return readJson(response).then(function (body) {
        return {ok: response.ok, status: response.status, body: body};
      });
    }, function () {
      throw new Failure(t("connection_lost"), {nextStep: OTHER_WAY});
    });
  }

  function bridgeRequest(path, options) {
    options = Object.assign({cache: "no-store", credentials: "omit"}, options || {});
    // Accept-Language is a CORS-safelisted header: no preflight because of it.
    options.headers = Object.assign({"Accept-Language": LANG}, options.headers || {});
    return fetch(bridge + path, options)
      .then(function (response) {
        return readJson(response).then(function (body) {
          return {ok: response.ok, status: response.status, body: body};
        });
      }, function () {
        throw new Failure(t("bridge_lost"), {outcome: "unreachable"});
      });
  }

  function operationPath(operationId, action) {
    return "/v1/operations/" + encodeURIComponent(operationId) + action;
  }

  /* continue and cancel carry no body: a simple request, sent without a CORS preflight (and so also from
     a page being left, with keepalive). */
  function operationAction(operationId, action, keepalive) {
    return bridgeRequest(operationPath(operationId, action), {method: "POST", keepalive: !!keepalive});
  }

  function cancelCurrent(keepalive) {
    var operationId = currentOperation;
    currentOperation = null;
    if (!operationId) {
      return Promise.resolve();
    }
    return operationAction(operationId, "/cancel", keepalive).catch(function () {
      return null;  // the bridge is gone: nothing is left running there either
    });
  }

  function wait(ms) {
    return new Promise(function (resolve) {
      window.setTimeout(resolve, ms);
    });
  }

  /* Is the bridge running, and does it accept this site? A refusal carries no CORS headers, so to this
     page it looks the same as a bridge that is not running: the help text covers both. A busy bridge is
     asked again for a while: it is usually a page just left, whose operation is ending. */
  function findBridge(attempt, focusAfter) {
    attempt = attempt || 0;
    warn("");
    showNextStep(null);
    showTries(null);
    noBridge.hidden = true;
    retryButton.hidden = true;
    startButton.hidden = true;
    cancelButton.hidden = true;
    if (!attempt) {
      say(t("looking"));
    }
    return bridgeRequest("/v1/status").then(function (answer) {
      if (!answer.ok) {
        throw new Error("status " + answer.status);
      }
      var status = answer.body;
      var readers = status.readers || [];
      var withCard = readers.filter(function (reader) { return reader.card_present; });
      if (status.busy) {
        if (attempt < BUSY_CHECKS) {
          say(t("bridge_finishing"));
          return wait(500).then(function () { return findBridge(attempt + 1, focusAfter); });
        }
        say(t("bridge_busy"));
        retryButton.hidden = false;
        if (focusAfter) {
          focusOn(statusEl);
        }
        return false;
      }
      if (!readers.length) {
        say(t("ready_no_reader"));
      } else if (!withCard.length) {
        say(t("ready_insert"));
      } else {
        say(t("ready_card"));
      }
      startButton.hidden = expired;
      if (focusAfter) {
        focusOn(statusEl);
      }
      return true;
    }).catch(function () {
      say(t("not_found"));
      noBridge.hidden = false;
      retryButton.hidden = false;
      if (focusAfter) {
        focusOn(statusEl);
      }
      return false;
    });
  }

  function handleEvent(event) {
    switch (event.type) {
      case "no_reader":
        step("step-card");
        say(t("no_reader"));
        break;
      case "insert_card":
        step("step-card");
        say(t("insert_card"));
        break;
      case "reading_card":
        step("step-card");
        say(t("reading_card"));
        break;
      case "enter_pin":
        step("step-pin");
        showTries(event.tries_left);
        if (event.pinpad) {
          say(t("enter_pin_pad"));
        } else {
          say(event.purpose === "change" ? t("enter_pin_change") : t("enter_pin"));
        }
        if (event.pin_url) {
          pinLink.setAttribute("href", withLang(event.pin_url));
          pinWindow.hidden = false;
          if (!event.extended) {
            pinLink.focus();
          }
        }
        startPinTime(event.pin_expires_in);
        break;
      case "pin_wrong":
        if (!(event.tries_left >= 1)) {
          showBlocked();  // a bridge that still reports the last wrong try as "0 tries left"
          break;
        }
        showTries(event.tries_left);
        warn(event.tries_left === 1 ? t("pin_wrong_one") : t("pin_wrong_other", {count: event.tries_left}));
        break;
      case "card_blocked":
        showBlocked();
        break;
      default:
        break;
    }
  }

  /* Long-poll the operation's events until it is done (resolves with the result) or fails. onCardRead,
     if given, handles card_read; the events after it wait until it has settled. */
  function follow(operationId, onCardRead) {
    var after = 0;
    function handle(events, index) {
      if (index >= events.length) {
        return poll();
      }
      var event = events[index];
      after = event.seq;
      if (event.type === "done" || event.type === "error") {
        if (currentOperation === operationId) {
          currentOperation = null;
        }
        if (event.type === "error") {
          throw fromBridge(event);
        }
        return event.result;
      }
      if (event.type === "card_read" && onCardRead) {
        return onCardRead(event).then(function () {
          return handle(events, index + 1);
        });
      }
      handleEvent(event);
      return handle(events, index + 1);
    }
    function poll() {
      return bridgeRequest(operationPath(operationId, "/events?after=" + after + "&wait=20"))
        .then(function (answer) {
          if (!answer.ok) {
            throw fromBridge(answer.body);
          }
          return handle(answer.body.events || [], 0);
        });
    }
    return poll();
  }

  function startOperation(path, body) {
    return bridgeRequest(path, {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify(body)
    }).then(function (answer) {
      if (!answer.ok) {
        throw fromBridge(answer.body);
      }
      currentOperation = answer.body.operation_id;
      cancelButton.hidden = false;
      return answer.body.operation_id;
    });
  }

  /* The IdP's pre-check of the card the bridge read; on "usable" the bridge may ask the PIN. */
  function checkCard(operationId, challenge, event) {
    step("step-card");
    say(t("checking_card"));
    return idpPost(root.getAttribute("data-precheck-url"), {
      challenge: challenge,
      card_certificate: event.card_certificate
    }).then(function (answer) {
      if (answer.ok && answer.body.home_region && typeof answer.body.redirect_to === "string") {
        /* Another region's card: its own OneCard asks the PIN. Nothing more happens on this bridge. */
        say(t("going_home", {name: answer.body.home_region.name}));
        return cancelCurrent(false).then(function () {
          window.location.assign(answer.body.redirect_to);
          return new Promise(function () {});  // the page is leaving: no next step here
        });
      }
      if (!answer.ok || answer.body.usable !== true) {
        throw fromIdp(answer.body, t("card_unusable"));
      }
      return operationAction(operationId, "/continue").then(function (reply) {
        if (!reply.ok) {
          throw fromBridge(reply.body);
        }
      });
    });
  }

  /* A PIN change has ended: the page that embeds this one (the kiosk's, which reports it for the audit
     trail) learns how, as the bridge told it — "changed", "blocked", "card_removed", "unreachable",
     "cancelled" or "failed". */
  function pinChangeEnded(outcome) {
    document.dispatchEvent(new CustomEvent("onecard:pin-change-ended", {detail: {outcome: outcome}}));
  }

  /* After a failure: cancel what still runs on the bridge, then say what happened (or, after Cancel, just
     offer to start again). */
  function settle(error) {
    var failure = error instanceof Failure
      ? error
      : new Failure(t("something_wrong"), {nextStep: OTHER_WAY});
    if (mode !== "login") {
      pinChangeEnded(cancelRequested ? "cancelled" : failure.options.outcome || "failed");
    }
    return cancelCurrent(false).then(function () {
      if (cancelRequested) {
        cancelRequested = false;
        busy = false;
        hidePinWindow();
        step(null);
        return findBridge(0, false).then(function (found) {
          if (found) {
            say(t("cancelled"));
          }
          focusOn(statusEl);
        });
      }
      fail(failure);
      return null;
    });
  }

  function login() {
    var challenge = null;
    return idpPost(root.getAttribute("data-challenge-url"), {}).then(function (answer) {
      if (!answer.ok) {
        throw fromIdp(answer.body, t("start_failed"));
      }
      challenge = answer.body.challenge;
      return startOperation("/v1/authenticate", {nonce: challenge, card_check: true});
    }).then(function (operationId) {
      return follow(operationId, function (event) {
        return checkCard(operationId, challenge, event);
      });
    }).then(function (token) {
      hidePinWindow();
      showTries(null);
      cancelButton.hidden = true;
      step("step-done");
      say(t("verifying"));
      return idpPost(root.getAttribute("data-verify-url"), {challenge: challenge, token: token});
    }).then(function (answer) {
      if (!answer.ok) {
        throw fromIdp(answer.body, t("not_verified"));
      }
      say(t("done"));
      window.location.assign(answer.body.redirect_to);
    }).catch(settle);
  }

  function changePin() {
    return startOperation("/v1/change-pin", {}).then(follow).then(function () {
      busy = false;
      hidePinWindow();
      showTries(null);
      cancelButton.hidden = true;
      step(null);
      warn("");
      say(t("pin_changed"));
      focusOn(statusEl);
      pinChangeEnded("changed");
    }).catch(settle);
  }

  startButton.addEventListener("click", function () {
    if (busy || expired) {
      return;
    }
    busy = true;
    cancelRequested = false;
    startButton.hidden = true;
    retryButton.hidden = true;
    warn("");
    showNextStep(null);
    say(t("starting"));
    (mode === "login" ? login() : changePin());
  });

  retryButton.addEventListener("click", function () {
    if (!busy) {
      findBridge(0, true);
      focusOn(statusEl);  // the button hides itself: the focus goes to what the page says now
    }
  });

  cancelButton.addEventListener("click", function () {
    cancelRequested = true;
    cancelButton.hidden = true;
    say(t("cancelling"));
    focusOn(statusEl);
    cancelCurrent(false);
  });

  // The login transaction ended (static/login-time.js): stop, and leave only "Start again".
  document.addEventListener("onecard:login-expired", function () {
    expired = true;
    cancelCurrent(false);
    busy = false;
    hidePinWindow();
    showTries(null);
    startButton.hidden = true;
    retryButton.hidden = true;
    cancelButton.hidden = true;
  });

  // Leaving the page (closing the tab, going back, following a link) ends the bridge operation too.
  window.addEventListener("pagehide", function () {
    cancelCurrent(true);
  });

  findBridge();
}());
