// leadroute dashboard: refresh the live panels, draw the report's charts. Nothing else runs here.
"use strict";
function refresh(box) {
  var every = parseInt(box.dataset.every || "1000", 10);
  var busy = false;
  setInterval(function () {
    if (busy || document.hidden) { return; }
    busy = true;
    fetch(box.dataset.refresh, {credentials: "same-origin", headers: {"Accept": "text/html-fragment"}})
      .then(function (r) {
        if (r.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname); return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) { if (html !== null) { box.innerHTML = html; } })
      .catch(function () { /* the next tick tries again */ })
      .finally(function () { busy = false; });
  }, every);
}
function charts() {
  if (typeof Plotly === "undefined") { return; }
  document.querySelectorAll("script.chart-data").forEach(function (node) {
    var figure = JSON.parse(node.textContent);
    Plotly.newPlot(node.dataset.target, figure.data, figure.layout, {displaylogo: false, responsive: true});
  });
}
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("[data-refresh]").forEach(refresh);
  charts();
});
