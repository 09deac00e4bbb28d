// The ticket and display pages (halls/pages/views.py): every data-refresh seconds, fetch the page again and
// swap the content of its [data-refresh-region], so the words stay the server's, in the page's language.
// The region is aria-live="polite": a screen reader hears a change (your number is called) once.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const region = document.querySelector("[data-refresh-region]");
  if (!region) return;
  const seconds = Number(region.dataset.refresh) || 15;
  const LANG = document.documentElement.getAttribute("lang") || "zh-CN";

  async function refresh() {
    try {
      const answer = await fetch(window.location.href, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { "Accept-Language": LANG },
      });
      if (!answer.ok) return;
      const page = new DOMParser().parseFromString(await answer.text(), "text/html");
      const fresh = page.querySelector("[data-refresh-region]");
      if (fresh && fresh.innerHTML !== region.innerHTML) region.innerHTML = fresh.innerHTML;
    } catch (error) {
      // Offline for a moment: the next round tries again.
    }
  }

  window.setInterval(refresh, seconds * 1000);
});
