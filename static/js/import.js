/* Import page: say at once when a file is over the upload limit (the server checks again), and
 * upload in the background so that a failed import keeps the chosen file (a fixed line can be
 * re-sent without picking the file again) and its report shows at the top of the page. */
(function () {
  "use strict";
  var form = document.getElementById("import-form");
  if (!form) return;
  var input = form.querySelector("input[type=file]");
  var button = form.querySelector("button[type=submit]");
  var max = Number(form.dataset.maxBytes);
  var msg = document.getElementById("file-size-error");
  var slot = document.getElementById("import-report-slot");
  function check() {
    var f = input.files && input.files[0];
    var tooBig = !!(f && max && f.size > max);
    msg.hidden = !tooBig;
    button.disabled = tooBig;
    return !tooBig;
  }
  function busy(on) {
    form.classList.toggle("is-uploading", on);
    button.disabled = on;
    button.textContent = on ? "Importing…" : "Import";
    window.PrefHub.track(on ? 1 : -1);
  }
  input.addEventListener("change", check);
  form.addEventListener("submit", function (e) {
    if (!check()) { e.preventDefault(); return; }
    if (!window.fetch || !window.DOMParser || !slot) return; // plain form post
    e.preventDefault();
    busy(true);
    fetch(form.action || window.location.href, { method: "POST", body: new FormData(form), credentials: "same-origin" })
      .then(function (res) { return res.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var report = doc.getElementById("import-report-slot");
        slot.replaceChildren.apply(slot, report ? Array.prototype.slice.call(report.childNodes) : []);
        // Field errors (wrong options, file too large) come back inside the form: take them over.
        var fresh = doc.getElementById("import-form");
        form.querySelectorAll(".field").forEach(function (field, i) {
          var other = fresh ? fresh.querySelectorAll(".field")[i] : null;
          field.querySelectorAll(".error, .errorlist").forEach(function (el) { el.remove(); });
          field.classList.toggle("has-error", !!(other && other.classList.contains("has-error")));
          if (other) other.querySelectorAll(".error, .errorlist").forEach(function (el) { field.appendChild(el); });
        });
        form.querySelectorAll(":scope > .alert").forEach(function (el) { el.remove(); });
        if (fresh) {
          var anchor = form.querySelector(".field");
          fresh.querySelectorAll(":scope > .alert").forEach(function (el) { form.insertBefore(el, anchor); });
        }
        var shown = document.getElementById("import-report") || form.querySelector(".alert, .has-error");
        if (shown) { shown.scrollIntoView({ block: "start" }); shown.focus({ preventScroll: true }); }
      })
      .catch(function () {
        slot.replaceChildren();
        var box = document.createElement("div");
        box.className = "alert alert-error";
        box.setAttribute("role", "alert");
        box.textContent = "Could not reach the server; nothing was imported. Your file is still selected: try again.";
        slot.appendChild(box);
      })
      .then(function () { busy(false); });
  });
})();
