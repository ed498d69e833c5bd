/* Guideline editor: live preview rendered by the server (the same sanitizer labelers get). */
(function () {
  "use strict";
  var editor = document.getElementById("guideline-editor");
  if (!editor) return;
  var textarea = editor.querySelector("textarea[name=body]");
  var preview = document.getElementById("guideline-preview");
  var status = document.getElementById("preview-status");
  var counter = document.getElementById("char-count");
  var url = editor.dataset.previewUrl;
  var csrf = editor.querySelector("input[name=csrfmiddlewaretoken]").value;
  var timer = null;
  var seq = 0;

  function count() {
    var text = textarea.value;
    var words = text.trim() ? text.trim().split(/\s+/).length : 0;
    counter.textContent = words + " words · " + text.length + " characters";
  }

  function render() {
    var mine = ++seq;
    status.textContent = "Updating…";
    var body = new FormData();
    body.append("body", textarea.value);
    window.PrefHub.track(1);
    fetch(url, { method: "POST", body: body, credentials: "same-origin", headers: { "X-CSRFToken": csrf } })
      .then(function (res) { return res.text().then(function (t) { return { ok: res.ok, text: t }; }); })
      .then(function (r) {
        if (mine !== seq) return; // a newer preview is on its way
        if (!r.ok) { status.textContent = "Preview unavailable"; return; }
        preview.innerHTML = r.text; // sanitized server-side by annotate.rendering
        status.textContent = "Preview";
      })
      .catch(function () { if (mine === seq) status.textContent = "Preview unavailable (offline?)"; })
      .then(function () { window.PrefHub.track(-1); });
  }

  textarea.addEventListener("input", function () {
    count();
    clearTimeout(timer);
    timer = setTimeout(render, 250);
    editor.dataset.dirty = "1";
  });
  editor.querySelector("form").addEventListener("submit", function () { delete editor.dataset.dirty; });
  window.addEventListener("beforeunload", function (e) {
    if (editor.dataset.dirty) { e.preventDefault(); e.returnValue = ""; }
  });

  // Write / preview tabs on narrow screens.
  editor.querySelectorAll("[data-pane]").forEach(function (tab) {
    tab.addEventListener("click", function () {
      editor.dataset.show = tab.dataset.pane;
      editor.querySelectorAll("[data-pane]").forEach(function (t) {
        t.setAttribute("aria-selected", t === tab ? "true" : "false");
      });
    });
  });
  count();
})();
