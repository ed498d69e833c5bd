/* Review queue keys: J/K move between judgments, A accept, X reject (types the reason first),
 * U restore, D final label of the task, B send the task back. Inert while typing. */
(function () {
  "use strict";
  // J/K walk the judgments the filters asked for (every judgment when there is no filter).
  var rows = Array.prototype.slice.call(document.querySelectorAll(".review-row.is-match"));
  if (!rows.length) return;
  var current = -1;
  function select(i) {
    if (i < 0 || i >= rows.length) return;
    if (rows[current]) rows[current].classList.remove("is-selected");
    current = i;
    rows[i].classList.add("is-selected");
    rows[i].focus();
  }
  function typing(el) {
    return el && (el.tagName === "TEXTAREA" || el.tagName === "SELECT" || (el.tagName === "INPUT" && el.type !== "checkbox" && el.type !== "radio"));
  }
  document.addEventListener("focusin", function (e) {
    var row = e.target.closest && e.target.closest(".review-row");
    if (row) { var i = rows.indexOf(row); if (i !== current) { if (rows[current]) rows[current].classList.remove("is-selected"); current = i; row.classList.add("is-selected"); } }
  });
  document.addEventListener("keydown", function (e) {
    if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
    if (typing(e.target)) {
      if (e.key === "Escape") { e.target.blur(); if (rows[current]) rows[current].focus(); }
      return;
    }
    var k = e.key.toLowerCase();
    if (k === "j") { e.preventDefault(); select(current + 1); return; }
    if (k === "k") { e.preventDefault(); select(Math.max(0, current - 1)); return; }
    var row = rows[current];
    if (!row) return;
    var task = row.closest(".review-task");
    if (k === "a" || k === "u") {
      var btn = row.querySelector("button[data-key=" + k + "]");
      if (btn) { e.preventDefault(); btn.click(); }
    } else if (k === "x") {
      var reason = row.querySelector(".reject-form input[name=reason]"); // none on the manager's own judgment
      if (reason) { e.preventDefault(); reason.focus(); }
    } else if (k === "d") {
      e.preventDefault();
      var first = task.querySelector(".adjudicate-form select, .adjudicate-form input[name=ranking]");
      if (first) first.focus();
    } else if (k === "b") {
      var back = task.querySelector("button[data-key=b]");
      if (back) { e.preventDefault(); back.click(); }
    }
  });
  // After an action the page comes back with the judgment (#judgment-ID) or task (#task-ID) it was
  // about in the address: the walk goes on from there, not from the top.
  function fromHash() {
    var target = window.location.hash ? document.getElementById(window.location.hash.slice(1)) : null;
    if (!target) return 0;
    var row = target.classList.contains("review-row") ? target : target.querySelector(".review-row.is-match");
    var i = rows.indexOf(row);
    return i === -1 ? 0 : i;
  }
  select(fromHash());
})();
