/* Site-wide behaviour: dismissable messages. (Strict CSP: no inline scripts anywhere.) */
(function () {
  "use strict";
  document.addEventListener("click", function (e) {
    var btn = e.target.closest("[data-dismiss]");
    if (btn) btn.closest(".message").remove();
  });
})();
