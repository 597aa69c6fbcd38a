// Elapsed times on the status pages tick every second between two polls: any element with
// data-since (an ISO date) shows the time since then. The server sends the same figures; this
// only keeps them moving while nothing else changes (and the poll answers 304).
(function () {
  function label(seconds) {
    if (seconds < 10) return seconds.toFixed(1) + " s";
    if (seconds < 60) return Math.round(seconds) + " s";
    var s = Math.round(seconds), m = Math.floor(s / 60);
    if (m < 60) return m + " min " + String(s % 60).padStart(2, "0") + " s";
    return Math.floor(m / 60) + " h " + String(m % 60).padStart(2, "0") + " min";
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-since]").forEach(function (el) {
      var since = Date.parse(el.getAttribute("data-since"));
      if (!isNaN(since)) el.textContent = label(Math.max(0, (now - since) / 1000));
    });
  }
  setInterval(tick, 1000);
})();
