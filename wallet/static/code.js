// The dynamic code (wallet/qr/views.py): count down every second, fetch a new code when the refresh time
// comes (every 30 s). The visible countdown changes every second and is hidden from screen readers; the
// status region says it in words a few times instead ("A new code comes in 10 seconds", "A new code is
// shown"). Every sentence comes from the page (#code-messages), in its language.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const image = document.getElementById("qr");
  const countdown = document.getElementById("countdown");
  const bar = document.getElementById("countdown-bar");
  const status = document.getElementById("code-status");
  const catalogue = document.getElementById("code-messages");
  const MESSAGES = catalogue ? JSON.parse(catalogue.textContent) : {};
  const LANG = document.documentElement.getAttribute("lang") || "zh-CN";
  const ANNOUNCE_AT = 10;  // seconds before the change: said once through the status region
  if (!image) return;
  const t = (key, seconds) => (MESSAGES[key] || key).replace("{seconds}", String(seconds));
  // The image's data attributes hold the current code's times: one place, read at every tick.
  // The server's clock decides; the phone's may be off, so count relative to the code's issue time.
  let offset = Number(image.dataset.issuedAt) - Date.now() / 1000;
  let fetching = false;
  let announced = false;

  async function refresh() {
    fetching = true;
    try {
      const answer = await fetch(image.dataset.api, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { "Accept-Language": LANG },
      });
      const data = await answer.json();
      if (!answer.ok) {
        image.hidden = true;
        countdown.textContent = data.error_description || t("no_code");
        status.textContent = countdown.textContent;
        return;
      }
      image.src = data.image;
      image.dataset.issuedAt = data.issued_at;
      image.dataset.expiresAt = data.expires_at;
      image.dataset.refreshAt = data.refresh_at;
      offset = data.issued_at - Date.now() / 1000;
      announced = false;
      status.textContent = t("new_code");
    } catch (error) {
      countdown.textContent = t("offline");
      status.textContent = countdown.textContent;
      image.dataset.refreshAt = String(Date.now() / 1000 + offset + 5);
    } finally {
      fetching = false;
    }
  }

  function tick() {
    const refreshAt = Number(image.dataset.refreshAt);
    const remaining = Math.max(0, Math.ceil(refreshAt - (Date.now() / 1000 + offset)));
    if (!image.hidden) countdown.textContent = t("new_code_in", remaining);
    if (bar) bar.value = remaining;
    if (remaining === ANNOUNCE_AT && !announced) {
      announced = true;
      status.textContent = t("new_code_soon", remaining);
    }
    if (remaining <= 0 && !fetching) refresh();
  }

  tick();
  window.setInterval(tick, 1000);
});
