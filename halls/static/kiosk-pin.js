// The kiosk's "Change my PIN" page runs the desktop PIN page's script (idp/static/card-login.js in
// change-pin mode): the bridge's own PIN window or PIN pad takes the old and new PIN. This script only tells
// the server how the change ended, for the audit trail — the card changes its PIN and tells nobody.
(function () {
  "use strict";
  var root = document.getElementById("card-login");
  var kiosk = document.getElementById("kiosk");
  if (!root || !kiosk) { return; }
  document.addEventListener("onecard:pin-change-ended", function (event) {
    var body = new URLSearchParams();
    body.set("csrf", kiosk.dataset.csrf);
    body.set("outcome", event.detail.outcome);
    window.fetch(root.dataset.outcomeUrl, { method: "POST", body: body, credentials: "same-origin" })
      .catch(function () { return null; });  // the audit line is lost with the network, not the change
  });
}());
