/* Import page: say at once when a file is over the upload limit (the server checks again). */
(function () {
  "use strict";
  var form = document.getElementById("import-form");
  if (!form) return;
  var input = form.querySelector("input[type=file]");
  var max = Number(form.dataset.maxBytes);
  var msg = document.getElementById("file-size-error");
  function check() {
    var f = input.files && input.files[0];
    var tooBig = !!(f && max && f.size > max);
    msg.hidden = !tooBig;
    form.querySelector("button[type=submit]").disabled = tooBig;
    return !tooBig;
  }
  input.addEventListener("change", check);
  form.addEventListener("submit", function (e) {
    if (!check()) { e.preventDefault(); return; }
    form.classList.add("is-uploading");
    form.querySelector("button[type=submit]").textContent = "Importing…";
  });
})();
