// hookmail's admin page: the overview refreshes the part marked data-poll
// every data-every seconds, without reloading the page. Everything else
// works without this script. The part comes from the server rendered by
// html/template, so every value in it is escaped already.
"use strict";

document.querySelectorAll("[data-poll]").forEach(function (el) {
  var every = (Number(el.dataset.every) || 5) * 1000;
  var busy = false;
  async function refresh() {
    if (busy || document.hidden) {
      return;
    }
    busy = true;
    try {
      var resp = await fetch(el.dataset.poll, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "text/html" },
      });
      if (resp.status === 401) {
        location.assign("/login?next=" + encodeURIComponent(location.pathname));
        return;
      }
      if (resp.ok) {
        el.innerHTML = await resp.text();
      }
    } catch (e) {
      // hookmail is restarting, or the network is down: the next tick tries again.
    } finally {
      busy = false;
    }
  }
  setInterval(refresh, every);
  document.addEventListener("visibilitychange", refresh);
});
