/* Project settings: add a rating-dimension row (a Django formset's empty form). */
(function () {
  "use strict";
  var addBtn = document.getElementById("add-dimension");
  if (!addBtn) return;
  var tpl = document.getElementById("dimension-template");
  var rows = document.getElementById("dimension-rows");
  var total = document.querySelector("input[name=dim-TOTAL_FORMS]");
  addBtn.addEventListener("click", function () {
    var index = Number(total.value);
    var html = tpl.innerHTML.replace(/__prefix__/g, String(index));
    var holder = document.createElement("template");
    holder.innerHTML = html.trim();
    var row = holder.content.firstElementChild;
    rows.appendChild(row);
    total.value = String(index + 1);
    var first = row.querySelector("input[type=text]");
    if (first) first.focus();
  });
  rows.addEventListener("click", function (e) {
    var btn = e.target.closest("[data-clear-row]");
    if (!btn) return;
    var row = btn.closest(".dimension-row");
    row.querySelectorAll("input[type=text]").forEach(function (i) { i.value = ""; });
    row.querySelectorAll("input[type=checkbox]").forEach(function (i) { i.checked = false; });
    row.classList.add("is-cleared");
  });
})();
