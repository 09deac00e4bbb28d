// The dynamic code (wallet/qr/views.py): count down every second, fetch a new code when the refresh time
// comes (every 30 s), announce the change once through the status region rather than every tick.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const image = document.getElementById("qr");
  const countdown = document.getElementById("countdown");
  const bar = document.getElementById("countdown-bar");
  const status = document.getElementById("code-status");
  if (!image) return;
  // The image's data attributes hold the current code's times: one place, read at every tick.
  // The server's clock decides; the phone's may be off, so count relative to the code's issue time.
  let offset = Number(image.dataset.issuedAt) - Date.now() / 1000;
  let fetching = false;

  async function refresh() {
    fetching = true;
    try {
      const answer = await fetch(image.dataset.api, { credentials: "same-origin", cache: "no-store" });
      const data = await answer.json();
      if (!answer.ok) {
        image.hidden = true;
        countdown.textContent = data.error_description || "No code can be shown.";
        status.textContent = countdown.textContent;
        return;
      }
      image.src = data.image;
      image.dataset.issuedAt = data.issued_at;
      image.dataset.expiresAt = data.expires_at;
      image.dataset.refreshAt = data.refresh_at;
      offset = data.issued_at - Date.now() / 1000;
      status.textContent = "A new code is shown.";
    } catch (error) {
      countdown.textContent = "No connection. Trying again…";
      image.dataset.refreshAt = String(Date.now() / 1000 + offset + 5);
    } finally {
      fetching = false;
    }
  }

  function tick() {
    const refreshAt = Number(image.dataset.refreshAt);
    const remaining = Math.max(0, Math.ceil(refreshAt - (Date.now() / 1000 + offset)));
    if (!image.hidden) countdown.textContent = "New code in " + remaining + " s";
    if (bar) bar.value = remaining;
    if (remaining <= 0 && !fetching) refresh();
  }

  tick();
  window.setInterval(tick, 1000);
});
