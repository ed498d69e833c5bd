// Generation job page: follow the job's progress by polling its small JSON status endpoint.
// No inline script (the CSP forbids it): the element carries the URL in data-job-status-url.
(function () {
  "use strict";
  var root = document.querySelector("[data-job-status-url]");
  if (!root || root.getAttribute("data-finished") === "true") {
    return;
  }
  var url = root.getAttribute("data-job-status-url");
  var labels = { queued: "Queued", running: "Running", done: "Done", failed: "Failed", cancelled: "Cancelled" };

  function setText(name, value) {
    var nodes = root.querySelectorAll('[data-field="' + name + '"]');
    for (var i = 0; i < nodes.length; i++) {
      nodes[i].textContent = value;
    }
  }

  function show(status) {
    setText("state", labels[status.state] || status.state);
    ["done_units", "failed_units", "total_units", "percent", "candidates", "tasks"].forEach(function (key) {
      setText(key, String(status[key]));
    });
    var bar = root.querySelector('progress[data-field="progress"]');
    if (bar) {
      bar.max = status.total_units || 1;
      bar.value = status.done_units + status.failed_units;
      bar.textContent = status.percent + "%";
    }
    var error = root.querySelector('[data-field="error"]');
    if (error) {
      error.textContent = status.error || "";
      error.hidden = !status.error;
    }
    root.setAttribute("data-state", status.state);
  }

  function poll(delay) {
    window.setTimeout(function () {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store" })
        .then(function (response) {
          if (!response.ok) {
            throw new Error("status " + response.status);
          }
          return response.json();
        })
        .then(function (status) {
          show(status);
          if (status.finished) {
            // Reload once so the failures table and the final figures come from the server.
            window.location.reload();
          } else {
            poll(1500);
          }
        })
        .catch(function () {
          poll(5000);
        });
    }, delay);
  }

  poll(1000);
})();
