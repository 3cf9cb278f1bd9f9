// The live views: an element with data-poll="URL" has its content replaced by URL's answer
// every data-every milliseconds (at most 2000), without reloading the page. A 401 (the
// session ended) goes to the login page. No build step, no external library.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const el of document.querySelectorAll("[data-poll]")) {
    const every = Math.min(Number(el.dataset.every) || 2000, 2000);
    const tick = async () => {
      try {
        const r = await fetch(el.dataset.poll, { credentials: "same-origin", cache: "no-store" });
        if (r.status === 200) {
          el.innerHTML = await r.text();
          el.dataset.polled = String(Number(el.dataset.polled || 0) + 1);
        } else if (r.status === 401) {
          window.location.assign("/login");
          return;
        }
      } catch (e) {
        // the server is restarting: try again at the next tick
      }
      window.setTimeout(tick, every);
    };
    window.setTimeout(tick, every);
  }
});
