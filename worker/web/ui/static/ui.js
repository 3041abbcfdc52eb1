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
function charts(box) {
  fetch(box.dataset.charts, {credentials: "same-origin"})
    .then(function (r) { return r.json(); })
    .then(function (made) {
      var summary = document.getElementById(box.dataset.summary);
      if (made.error) { summary.textContent = made.error; box.dataset.state = "failed"; return; }
      summary.textContent = made.text || "No ledger yet.";
      Object.keys(made.charts).forEach(function (name) {
        var div = document.createElement("div");
        div.className = "chart";
        div.id = "chart-" + name;
        box.appendChild(div);
        var figure = made.charts[name];
        Plotly.newPlot(div, figure.data, figure.layout, {displaylogo: false, responsive: true});
      });
      box.dataset.state = "done";
    });
}
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("[data-refresh]").forEach(refresh);
  document.querySelectorAll("[data-charts]").forEach(charts);
});
