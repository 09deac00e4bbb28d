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
 * #card-login. Status lines go to an aria-live region; errors to a role=alert region, which also takes the
 * focus.
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
  var BLOCKED = "Your card's PIN is blocked after too many wrong tries, to protect you. Please go to a " +
    "card service counter with your card and your ID card to unblock it.";
  var OTHER_WAY = "If it keeps failing, you can log in another way.";

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
  var busy = false;
  var currentOperation = null;  // the bridge operation this page started and has not seen end
  var cancelRequested = false;

  function say(text) {
    statusEl.textContent = text;
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
    triesEl.textContent = count === 1
      ? "Careful: 1 try left before the card blocks itself."
      : count + " tries left before the card blocks itself.";
    triesEl.hidden = false;
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
  }

  function showBlocked() {
    showTries(null);
    hidePinWindow();
    warn(BLOCKED);
    alertEl.focus();
  }

  /* What went wrong and what the citizen can do next. retry: offer "Try again"; nextStep: a line shown
     with the link to the other ways of logging in. */
  function Failure(message, options) {
    this.message = message;
    this.options = options || {};
  }

  function fromBridge(body) {
    body = body || {};
    if (body.error === "card_blocked") {
      return new Failure(BLOCKED, {retry: false, nextStep: "Meanwhile you can log in another way."});
    }
    return new Failure(body.error_description || "The card operation did not work. Please try again.",
                       {nextStep: OTHER_WAY});
  }

  function fromIdp(body, fallback) {
    body = body || {};
    if (body.error === "invalid_card_auth") {
      // The server refused the card's answer (for instance its signature): a second try usually works.
      return new Failure("The server could not accept your card's answer. Take the card out, put it back " +
                         "in the card reader and press Try again.", {nextStep: OTHER_WAY});
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
    say(mode === "login" ? "The login did not work." : "The PIN was not changed.");
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
      headers: {"Content-Type": "application/json", "X-CSRF-Token": root.getAttribute("data-csrf") || ""},
      body: JSON.stringify(data)
    }).then(function (response) {
      return readJson(response).then(function (body) {
        return {ok: response.ok, status: response.status, body: body};
      });
    }, function () {
      throw new Failure("The connection to the server was lost. Please try again.", {nextStep: OTHER_WAY});
    });
  }

  function bridgeRequest(path, options) {
    return fetch(bridge + path, Object.assign({cache: "no-store", credentials: "omit"}, options || {}))
      .then(function (response) {
        return readJson(response).then(function (body) {
          return {ok: response.ok, status: response.status, body: body};
        });
      }, function () {
        throw new Failure("The connection to the OneCard reader program was lost. Check that it is " +
                          "running and try again.");
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
  function findBridge(attempt) {
    attempt = attempt || 0;
    warn("");
    showNextStep(null);
    showTries(null);
    noBridge.hidden = true;
    retryButton.hidden = true;
    startButton.hidden = true;
    cancelButton.hidden = true;
    if (!attempt) {
      say("Looking for the OneCard reader program…");
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
          say("The OneCard reader program is finishing another card operation. Please wait…");
          return wait(500).then(function () { return findBridge(attempt + 1); });
        }
        say("The OneCard reader program is busy with another card operation. Finish it, then try again.");
        retryButton.hidden = false;
        return false;
      }
      if (!readers.length) {
        say("The OneCard reader program is running. Connect your card reader, then press the button.");
      } else if (!withCard.length) {
        say("Ready. Put your social security card in the card reader, then press the button.");
      } else {
        say("Ready. Your card is in the reader: press the button.");
      }
      startButton.hidden = false;
      return true;
    }).catch(function () {
      say("The OneCard reader program was not found on this computer (or it does not accept this website).");
      noBridge.hidden = false;
      retryButton.hidden = false;
      return false;
    });
  }

  function handleEvent(event) {
    switch (event.type) {
      case "no_reader":
        step("step-card");
        say("No card reader found. Please connect your card reader.");
        break;
      case "insert_card":
        step("step-card");
        say("Please put your social security card in the card reader.");
        break;
      case "reading_card":
        step("step-card");
        say("Reading your card… Please do not remove it.");
        break;
      case "enter_pin":
        step("step-pin");
        showTries(event.tries_left);
        if (event.pinpad) {
          say("Type your 6-digit PIN on the card reader's keypad, then press OK on the reader.");
        } else {
          say(event.purpose === "change"
            ? "Type your current PIN and your new PIN in the OneCard window."
            : "Type your 6-digit PIN in the OneCard window.");
        }
        if (event.pin_url) {
          pinLink.setAttribute("href", event.pin_url);
          pinWindow.hidden = false;
          pinLink.focus();
        }
        break;
      case "pin_wrong":
        if (!(event.tries_left >= 1)) {
          showBlocked();  // a bridge that still reports the last wrong try as "0 tries left"
          break;
        }
        showTries(event.tries_left);
        warn(event.tries_left === 1
          ? "The PIN was wrong. You have 1 try left: if the next PIN is wrong too, the card blocks itself."
          : "The PIN was wrong. You have " + event.tries_left + " tries left.");
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
    say("Checking that this card can be used here…");
    return idpPost(root.getAttribute("data-precheck-url"), {
      challenge: challenge,
      card_certificate: event.card_certificate
    }).then(function (answer) {
      if (!answer.ok || answer.body.usable !== true) {
        throw fromIdp(answer.body, "This card cannot be used to log in here.");
      }
      return operationAction(operationId, "/continue").then(function (reply) {
        if (!reply.ok) {
          throw fromBridge(reply.body);
        }
      });
    });
  }

  /* After a failure: cancel what still runs on the bridge, then say what happened (or, after Cancel, just
     offer to start again). */
  function settle(error) {
    var failure = error instanceof Failure
      ? error
      : new Failure("Something went wrong. Please try again.", {nextStep: OTHER_WAY});
    return cancelCurrent(false).then(function () {
      if (cancelRequested) {
        cancelRequested = false;
        busy = false;
        hidePinWindow();
        step(null);
        return findBridge();
      }
      fail(failure);
      return null;
    });
  }

  function login() {
    var challenge = null;
    return idpPost(root.getAttribute("data-challenge-url"), {}).then(function (answer) {
      if (!answer.ok) {
        throw fromIdp(answer.body, "The login could not start. Please reload the page.");
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
      say("Checking your card with the server…");
      return idpPost(root.getAttribute("data-verify-url"), {challenge: challenge, token: token});
    }).then(function (answer) {
      if (!answer.ok) {
        throw fromIdp(answer.body, "The card could not be verified.");
      }
      say("Done: you are logged in. Taking you back to the service…");
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
      say("Your PIN has been changed. Use the new PIN from now on.");
    }).catch(settle);
  }

  startButton.addEventListener("click", function () {
    if (busy) {
      return;
    }
    busy = true;
    cancelRequested = false;
    startButton.hidden = true;
    retryButton.hidden = true;
    warn("");
    showNextStep(null);
    say("Starting…");
    (mode === "login" ? login() : changePin());
  });

  retryButton.addEventListener("click", function () {
    if (!busy) {
      findBridge();
    }
  });

  cancelButton.addEventListener("click", function () {
    cancelRequested = true;
    cancelButton.hidden = true;
    say("Cancelling…");
    cancelCurrent(false);
  });

  // Leaving the page (closing the tab, going back, following a link) ends the bridge operation too.
  window.addEventListener("pagehide", function () {
    cancelCurrent(true);
  });

  findBridge();
}());
