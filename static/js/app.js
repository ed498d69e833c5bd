/* Site-wide behaviour: dismissable messages, and the count of requests in flight that the page
 * scripts (loaded after this one) keep. (Strict CSP: no inline scripts anywhere.) */
(function () {
  "use strict";
  document.addEventListener("click", function (e) {
    var btn = e.target.closest("[data-dismiss]");
    if (btn) btn.closest(".message").remove();
  });

  // How many requests are in flight, on <html data-pending>: lets tests (and people debugging)
  // see when the page has settled. A page script calls track(1) as a request leaves and
  // track(-1) when it has been answered or has failed.
  function track(delta) {
    var root = document.documentElement;
    root.dataset.pending = String(Number(root.dataset.pending || 0) + delta);
  }
  window.PrefHub = { track: track };
})();
