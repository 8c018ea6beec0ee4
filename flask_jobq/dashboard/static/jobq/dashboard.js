// jobq dashboard: live refresh of the [data-live] region. Every page works without it.
(function () {
  "use strict";
  var INTERVAL = 2500;
  var region = document.querySelector("[data-live]");
  var badge = document.getElementById("live-state");
  if (!region || !window.fetch || !window.DOMParser) { return; }
  var timer = null;
  var busy = false;

  function userIsBusy() {
    var active = document.activeElement;
    if (active && active.closest && active.closest("form") &&
        /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName) && active.type !== "hidden") {
      return true;
    }
    return document.querySelector("[data-live] input[type=checkbox]:checked") !== null;
  }

  function show(state) {
    if (!badge) { return; }
    badge.hidden = false;
    badge.textContent = state;
    badge.classList.toggle("paused", state !== "live");
  }

  function refresh() {
    if (busy || document.hidden) { return; }
    if (userIsBusy()) { show("paused while editing"); return; }
    busy = true;
    fetch(window.location.href, {
      headers: { "Accept": "text/html", "X-Jobq-Live": "1" },
      credentials: "same-origin",
      cache: "no-store"
    }).then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.text();
    }).then(function (text) {
      var page = new DOMParser().parseFromString(text, "text/html");
      var fresh = page.querySelector("[data-live]");
      if (fresh && !userIsBusy()) {
        region.replaceChildren.apply(region, Array.prototype.slice.call(fresh.childNodes).map(function (node) {
          return document.importNode(node, true);
        }));
        var footer = page.querySelector("footer");
        var current = document.querySelector("footer");
        if (footer && current) { current.textContent = footer.textContent; }
      }
      show("live");
    }).catch(function () {
      show("offline");
    }).then(function () { busy = false; });
  }

  function start() {
    if (timer === null) { timer = window.setInterval(refresh, INTERVAL); }
    show("live");
  }

  function stop() {
    if (timer !== null) { window.clearInterval(timer); timer = null; }
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) { stop(); } else { refresh(); start(); }
  });
  start();
})();
