/* Training run page: poll the run's status JSON while it is active and swap in the server-rendered
   summary and SVG charts and the log tail (CSP: no inline scripts or style attributes). */
(function () {
  "use strict";
  var root = document.getElementById("run-live");
  if (!root || root.dataset.active !== "1") return;
  var url = root.dataset.statusUrl;
  var log = document.getElementById("run-log");
  var timer = null;

  function apply(data) {
    document.getElementById("run-charts").innerHTML = data.charts_html;
    document.getElementById("run-summary").innerHTML = data.summary_html;
    if (log) {
      var atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      log.textContent = data.log;
      if (atBottom) log.scrollTop = log.scrollHeight;
    }
    if (!data.active) {
      window.clearInterval(timer);
      window.location.reload(); // the actions (cancel, register) depend on the final state
    }
  }

  function poll() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data) apply(data); })
      .catch(function () { /* keep polling: the next tick may succeed */ });
  }

  timer = window.setInterval(poll, 2000);
})();
