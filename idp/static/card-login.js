/*
 * Card + PIN login and PIN change through the OneCard reader bridge (DESIGN.md §4).
 *
 * The page asks the IdP for a challenge, hands it to the bridge on 127.0.0.1 (the bridge takes this page's
 * origin from the browser's Origin header), follows the bridge's progress events, and posts the resulting
 * card-auth token back to the IdP. The PIN is never typed here: the bridge's own PIN window (another
 * origin) or the reader's keypad takes it.
 *
 * No inline script (CSP script-src 'self'); everything the page needs is in data-* attributes of
 * #card-login. Status lines go to an aria-live region; errors to a role=alert region.
 */
(function () {
  "use strict";

  var root = document.getElementById("card-login");
  if (!root) {
    return;
  }
  var mode = root.getAttribute("data-mode") || "login";
  var bridge = (root.getAttribute("data-bridge-url") || "http://127.0.0.1:47400").replace(/\/+$/, "");

  function el(id) {
    return document.getElementById(id);
  }
  var statusEl = el("status");
  var triesEl = el("tries");
  var alertEl = el("alert");
  var pinWindow = el("pin-window");
  var pinLink = el("pin-link");
  var startButton = el("start");
  var retryButton = el("retry");
  var noBridge = el("no-bridge");
  var busy = false;

  function say(text) {
    statusEl.textContent = text;
  }

  function warn(text) {
    alertEl.textContent = text || "";
    alertEl.hidden = !text;
  }

  function showTries(count) {
    if (typeof count !== "number") {
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

  function fail(message) {
    busy = false;
    hidePinWindow();
    step(null);
    say(mode === "login" ? "The login did not work." : "The PIN was not changed.");
    warn(message);
    retryButton.hidden = false;
    startButton.hidden = true;
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
    });
  }

  function bridgeRequest(path, options) {
    return fetch(bridge + path, Object.assign({cache: "no-store", credentials: "omit"}, options || {}))
      .then(function (response) {
        return readJson(response).then(function (body) {
          return {ok: response.ok, status: response.status, body: body};
        });
      });
  }

  /* Is the bridge running, and does it accept this site? A refusal carries no CORS headers, so to this
     page it looks the same as a bridge that is not running: the help text covers both. */
  function findBridge() {
    warn("");
    showTries(null);
    noBridge.hidden = true;
    retryButton.hidden = true;
    startButton.hidden = true;
    say("Looking for the OneCard reader program…");
    return bridgeRequest("/v1/status").then(function (answer) {
      if (!answer.ok) {
        throw new Error("status " + answer.status);
      }
      var status = answer.body;
      var readers = status.readers || [];
      var withCard = readers.filter(function (reader) { return reader.card_present; });
      if (status.busy) {
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

  function BridgeFailure(event) {
    this.event = event;
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
        showTries(event.tries_left);
        warn(event.tries_left === 1
          ? "The PIN was wrong. You have 1 try left: if the next PIN is wrong too, the card blocks itself."
          : "The PIN was wrong. You have " + event.tries_left + " tries left.");
        break;
      case "card_blocked":
        showTries(null);
        warn("Your card's PIN is blocked after too many wrong tries, to protect you. Please go to a card " +
             "service counter with your card and your ID card to unblock it.");
        break;
      default:
        break;
    }
  }

  /* Long-poll the operation's events until it is done (resolves with the result) or fails. */
  function follow(operationId) {
    var after = 0;
    function poll() {
      var path = "/v1/operations/" + encodeURIComponent(operationId) + "/events?after=" + after + "&wait=20";
      return bridgeRequest(path).then(function (answer) {
        if (!answer.ok) {
          throw new BridgeFailure(answer.body);
        }
        var events = answer.body.events || [];
        for (var i = 0; i < events.length; i += 1) {
          var event = events[i];
          after = event.seq;
          if (event.type === "done") {
            return event.result;
          }
          if (event.type === "error") {
            throw new BridgeFailure(event);
          }
          handleEvent(event);
        }
        return poll();
      });
    }
    return poll();
  }

  function bridgeMessage(error) {
    if (error instanceof BridgeFailure) {
      var event = error.event || {};
      if (event.error === "card_blocked") {
        return "Your card's PIN is blocked after too many wrong tries. Please go to a card service counter " +
               "with your card and your ID card to unblock it.";
      }
      return event.error_description || "The card operation did not work. Please try again.";
    }
    return "The connection to the OneCard reader program was lost. Check that it is running and try again.";
  }

  function startOperation(path, body) {
    return bridgeRequest(path, {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify(body)
    }).then(function (answer) {
      if (!answer.ok) {
        throw new BridgeFailure(answer.body);
      }
      return answer.body.operation_id;
    });
  }

  function login() {
    var challenge = null;
    return idpPost(root.getAttribute("data-challenge-url"), {}).then(function (answer) {
      if (!answer.ok) {
        fail(answer.body.error_description || "The login could not start. Please reload the page.");
        return null;
      }
      challenge = answer.body.challenge;
      return startOperation("/v1/authenticate", {nonce: challenge}).then(follow).then(function (token) {
        hidePinWindow();
        showTries(null);
        step("step-done");
        say("Checking your card with the server…");
        return idpPost(root.getAttribute("data-verify-url"), {challenge: challenge, token: token});
      }, function (error) {
        fail(bridgeMessage(error));
        return null;
      });
    }).then(function (answer) {
      if (!answer) {
        return;
      }
      if (!answer.ok) {
        fail(answer.body.error_description || "The card could not be verified.");
        return;
      }
      say("Done: you are logged in. Taking you back to the service…");
      window.location.assign(answer.body.redirect_to);
    }, function () {
      fail("The connection to the server was lost. Please try again.");
    });
  }

  function changePin() {
    return startOperation("/v1/change-pin", {}).then(follow).then(function () {
      busy = false;
      hidePinWindow();
      showTries(null);
      step(null);
      warn("");
      say("Your PIN has been changed. Use the new PIN from now on.");
    }, function (error) {
      fail(bridgeMessage(error));
    });
  }

  startButton.addEventListener("click", function () {
    if (busy) {
      return;
    }
    busy = true;
    startButton.hidden = true;
    retryButton.hidden = true;
    warn("");
    say("Starting…");
    (mode === "login" ? login() : changePin());
  });

  retryButton.addEventListener("click", function () {
    if (!busy) {
      findBridge();
    }
  });

  findBridge();
}());
