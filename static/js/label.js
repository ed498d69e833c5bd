/* PrefHub labeling workspace.
 *
 * The page is server-rendered; this script wires the keyboard, prefetching, submit, skip, undo
 * and the guideline acknowledgement. No framework, no eval, no inline handlers (strict CSP).
 *
 * Leases: the task on screen and at most one prefetched task are live leases. The next task is
 * fetched as soon as one is shown, so moving on after a submit is instant. Responses are
 * addressed by display position only; the server maps positions back to candidates.
 */
(function () {
  "use strict";

  var ws = document.getElementById("workspace");
  var cfgEl = document.getElementById("label-config");
  if (!ws || !cfgEl) return;
  var cfg = JSON.parse(cfgEl.textContent);

  var slot = document.getElementById("task-slot");
  var loading = document.getElementById("loading");
  var notice = document.getElementById("notice");
  var toast = document.getElementById("toast");
  var drawer = document.getElementById("guidelines-drawer");
  var helpDialog = document.getElementById("help-dialog");
  var skipDialog = document.getElementById("skip-dialog");
  var ackDialog = document.getElementById("ack-dialog");
  var progressEl = document.getElementById("progress");
  var progressText = document.getElementById("progress-text");

  var current = null; // the task on screen, or null (done / loading)
  var queue = []; // prefetched tasks, oldest lease first
  var lastSubmitted = null; // {task}: what Backspace undoes
  var noMore = false; // the server said there is nothing left to prefetch
  var inflight = null; // the prefetch request in progress
  var busy = false; // a submit, skip or undo in progress
  var toastTimer = null;

  // --- small helpers ------------------------------------------------------------------------

  function actionUrl(template, id) {
    return template.replace(/\/0\/(submit|skip|undo|renew)\/$/, "/" + id + "/$1/");
  }

  // How many requests are in flight, on <html data-pending> (app.js): "0" from the start here.
  var track = window.PrefHub.track;
  track(0);

  // A request without an answer after this long is given up (a connection gone dead without
  // closing would otherwise keep the page "saving" forever): it fails as one that could not reach
  // the server, and the labeler can send it again (submit, skip and undo are safe to repeat).
  var REQUEST_TIMEOUT_MS = 60 * 1000;

  function request(method, url, body) {
    var opts = {
      method: method,
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": cfg.csrf },
    };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    var controller = new AbortController();
    opts.signal = controller.signal;
    var timer = setTimeout(function () { controller.abort(); }, REQUEST_TIMEOUT_MS);
    track(1);
    var done = function () { clearTimeout(timer); track(-1); };
    return fetch(url, opts).then(function (res) {
      var type = res.headers.get("Content-Type") || "";
      if (type.indexOf("application/json") === -1) {
        var signedOut = res.redirected && res.url.indexOf("/accounts/login") !== -1;
        return {
          ok: false,
          status: signedOut ? 401 : res.status,
          data: {
            error: signedOut ? "signed_out" : "unexpected",
            detail: signedOut
              ? "You were signed out. Reload the page to sign in again; nothing was saved for this task."
              : "The server answered unexpectedly (" + res.status + "). Try again.",
          },
        };
      }
      return res.json().then(function (data) {
        return { ok: res.ok, status: res.status, data: data || {} };
      });
    }).then(
      function (r) { done(); return r; },
      function (err) { done(); throw err; }
    );
  }
  var post = function (url, body) { return request("POST", url, body || {}); };
  var get = function (url) { return request("GET", url); };

  function fragment(html) {
    var tpl = document.createElement("template");
    tpl.innerHTML = (html || "").trim();
    return tpl.content.firstElementChild;
  }

  function isTyping(el) {
    if (!el || !el.tagName) return false;
    if (el.isContentEditable) return true;
    var tag = el.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT") return true;
    if (tag !== "INPUT") return false;
    return ["radio", "checkbox", "button", "submit", "reset", "range", "color", "file"].indexOf(el.type) === -1;
  }

  function isControl(el) {
    if (!el || !el.tagName) return false;
    return ["BUTTON", "A", "SUMMARY", "INPUT", "LABEL"].indexOf(el.tagName) !== -1;
  }

  function dialogOpen() {
    return helpDialog.open || skipDialog.open || ackDialog.open;
  }

  function fmtClock(ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }

  // --- active time on task (paused while the tab is hidden) ----------------------------------

  function Timer() { this.ms = 0; this.since = null; }
  Timer.prototype.start = function () {
    if (this.since === null && !document.hidden) this.since = performance.now();
  };
  Timer.prototype.pause = function () {
    if (this.since !== null) { this.ms += performance.now() - this.since; this.since = null; }
  };
  Timer.prototype.value = function () {
    return Math.round(this.ms + (this.since !== null ? performance.now() - this.since : 0));
  };
  document.addEventListener("visibilitychange", function () {
    if (!current) return;
    if (document.hidden) current.timer.pause(); else current.timer.start();
  });

  // --- notices, toast, progress -------------------------------------------------------------

  function showNotice(text, kind) {
    notice.querySelector(".notice-text").textContent = text;
    notice.className = "notice notice-" + (kind || "warning");
    notice.hidden = false;
  }
  function hideNotice() { notice.hidden = true; }

  function showToast(text, canUndo) {
    toast.querySelector(".toast-text").textContent = text;
    toast.querySelector("[data-action=undo]").hidden = !canUndo;
    toast.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { toast.hidden = true; }, 8000);
  }
  function hideToast() { toast.hidden = true; clearTimeout(toastTimer); }

  function updateProgress(p) {
    if (!p) return;
    progressEl.max = Math.max(1, p.total);
    progressEl.value = p.done;
    progressText.replaceChildren();
    var a = document.createElement("strong"); a.textContent = p.done;
    var b = document.createElement("strong"); b.textContent = p.left;
    progressText.append(a, " done · ", b, " left");
  }

  function formError(task, text, focusEl) {
    var box = task.el.querySelector(".form-error");
    if (!text) { box.hidden = true; box.textContent = ""; return; }
    box.textContent = text;
    box.hidden = false;
    if (focusEl) focusEl.focus();
  }

  // --- tasks --------------------------------------------------------------------------------

  function makeTask(el, guidelinePending) {
    if (!el || !el.classList || !el.classList.contains("task")) return null;
    return {
      el: el,
      id: Number(el.dataset.assignmentId),
      kind: el.dataset.kind,
      expiresAt: Date.parse(el.dataset.expiresAt),
      activeAt: 0, // when the labeler last worked on it (a key, a click, typing)
      renewing: false,
      timer: new Timer(),
      guidelinePending: !!guidelinePending,
      touched: false,
      confirmUntouched: false,
      wired: false,
      selected: 0,
    };
  }

  function heldIds(extra) {
    var ids = queue.map(function (t) { return t.id; });
    if (current) ids.push(current.id);
    return ids.concat(extra || []);
  }

  function prefetch() {
    if (inflight) return inflight;
    if (queue.length >= 1 || noMore || !current) return Promise.resolve();
    inflight = post(cfg.urls.next, { exclude: heldIds() })
      .then(function (r) {
        if (!r.ok) return;
        if (r.data.state === "task") {
          var t = makeTask(fragment(r.data.html), r.data.guideline_pending);
          if (t && heldIds().indexOf(t.id) === -1) queue.push(t);
        } else if (r.data.state === "done") {
          noMore = true;
        }
      })
      .catch(function () { /* the next advance() asks again */ })
      .then(function () { inflight = null; });
    return inflight;
  }

  function takeQueued(dropped) {
    while (queue.length) {
      var t = queue.shift();
      if (t.expiresAt - Date.now() > 5000) return t;
      dropped.push(t.id); // its lease has run out while it waited
    }
    return null;
  }

  // --- the prompt stays reachable: a compact bar under the work bar once the conversation is
  // scrolled away, and P to jump back to it ------------------------------------------------------

  var promptBar = document.getElementById("prompt-bar");
  var promptObserver = null;
  function watchPrompt(task) {
    if (promptObserver) promptObserver.disconnect();
    promptBar.hidden = true;
    var conv = task.el.querySelector(".conversation");
    var turns = task.el.querySelectorAll(".conversation .turn-user .turn-body");
    if (!conv || !turns.length || !window.IntersectionObserver) return;
    promptBar.querySelector(".prompt-bar-text").textContent = turns[turns.length - 1].textContent.trim();
    promptObserver = new IntersectionObserver(function (entries) {
      var e = entries[entries.length - 1];
      promptBar.hidden = e.isIntersecting || e.boundingClientRect.top > 0;
    });
    promptObserver.observe(conv);
  }
  function showPrompt() {
    if (!current) return;
    var conv = current.el.querySelector(".conversation");
    if (conv) conv.scrollIntoView({ block: "start", behavior: "smooth" });
  }

  // Sizes of the sticky bars, for scroll padding (focus never lands under them) and the prompt bar.
  function measureBars() {
    var root = document.documentElement;
    var bar = ws.querySelector(".workbar");
    if (bar) root.style.setProperty("--workbar-h", bar.offsetHeight + "px");
    var decision = current && current.kind === "pairwise" ? current.el.querySelector(".decision") : null;
    root.style.setProperty("--decision-h", (decision ? decision.offsetHeight : 0) + "px");
  }
  if (window.ResizeObserver) new ResizeObserver(measureBars).observe(ws);
  window.addEventListener("resize", measureBars);

  // A digit on a focused rating scale gives that score and touches nothing else.
  function ratingKey(e) {
    var fs = e.target && e.target.closest ? e.target.closest("fieldset.rating") : null;
    if (!fs) return false;
    if (!/^[0-9]$/.test(e.key)) return false;
    e.preventDefault();
    var value = e.key === "0" ? "10" : e.key;
    var input = fs.querySelector('input[value="' + value + '"]');
    if (input) { input.checked = true; input.focus(); }
    return true;
  }

  function show(task) {
    if (current && current !== task) current.timer.pause();
    hideLoading();
    slot.replaceChildren(task.el);
    current = task;
    wire(task);
    task.timer.start();
    task.el.setAttribute("tabindex", "-1");
    task.el.focus({ preventScroll: true });
    window.scrollTo({ top: 0 });
    updateLeaseNote();
    if (task.kind === "ranking") renumber(task);
    watchPrompt(task);
    measureBars();
    if (task.guidelinePending) openAck();
  }

  function showDone(html) {
    if (current) current.timer.pause();
    current = null;
    hideLoading();
    var el = fragment(html);
    slot.replaceChildren(el || document.createTextNode("No more tasks."));
  }

  function showStuck(text) {
    current = null;
    hideLoading();
    var box = document.createElement("section");
    box.className = "task-done";
    var h = document.createElement("h2"); h.textContent = "Can't load a task";
    var p = document.createElement("p"); p.textContent = text;
    var a = document.createElement("a"); a.className = "btn btn-primary"; a.href = window.location.pathname; a.textContent = "Reload";
    box.append(h, p, a);
    slot.replaceChildren(box);
  }

  function showLoading() { slot.replaceChildren(); loading.hidden = false; }
  function hideLoading() { loading.hidden = true; }

  // A prefetched task's lease ran while it waited: restart its clock when it comes on screen.
  // Requests from this page go one after another (renew, then prefetch).
  function renew(task) {
    task.renewing = true;
    return post(actionUrl(cfg.urls.renew, task.id), {})
      .then(function (r) {
        if (r.ok && r.data.expires_at) { task.expiresAt = Date.parse(r.data.expires_at); updateLeaseNote(); }
        else if (r.status === 409) {
          // The lease ended behind the page (a submit or skip whose answer was lost, or it ran out):
          // the task on screen is no longer the labeler's to do. Say so and move on now, not after
          // they judged it again.
          task.renewRefused = true;
          if (task === current && !busy) handleError(task, r);
        }
      })
      .catch(function () { /* the lease note warns before it runs out */ })
      .then(function () { task.renewing = false; });
  }

  // A task being worked on keeps its lease: once half of it is gone, activity since the lease
  // (re)started renews it. An idle page lets it run out, so an abandoned task goes back to the pool.
  var leaseMs = (cfg.leaseTtlSeconds || 0) * 1000;
  function noteActivity() { if (current) current.activeAt = Date.now(); }
  // Reading counts: scrolling a long response or the guidelines is work on the task too.
  ["keydown", "input", "pointerdown", "wheel", "scroll"].forEach(function (type) {
    document.addEventListener(type, noteActivity, { capture: true, passive: true });
  });
  function keepLease() {
    var task = current;
    if (!task || !leaseMs || task.renewing || task.renewRefused || busy) return;
    var left = task.expiresAt - Date.now();
    if (left <= 0 || left > leaseMs / 2) return;
    if (task.activeAt > task.expiresAt - leaseMs) renew(task);
  }

  function advance() {
    if (current) current.timer.pause();
    var dropped = [];
    var next = takeQueued(dropped);
    if (next) {
      show(next);
      // Renew, then prefetch, in the background: the labeler can work on (and submit) this task
      // while the one after it is still on its way.
      renew(next).then(prefetch);
      return Promise.resolve();
    }
    current = null;
    showLoading();
    return Promise.resolve(inflight)
      .then(function () {
        var t = takeQueued(dropped);
        if (t) {
          return renew(t).then(function () {
            if (!t.renewRefused) return t;
            dropped.push(t.id); // its lease ended while it waited: not ours to show
            return claimNext(dropped);
          });
        }
        return claimNext(dropped);
      })
      .then(function (t) { if (t) { show(t); prefetch(); } })
      .catch(function () { showStuck("Could not reach the server. Check your connection and reload."); });
  }

  // Lease the next task for the screen (none queued): resolves to it, or to null once the page
  // says why there is none.
  function claimNext(dropped) {
    return post(cfg.urls.next, { exclude: heldIds(dropped) }).then(function (r) {
      if (r.ok && r.data.state === "task") return makeTask(fragment(r.data.html), r.data.guideline_pending);
      if (r.ok && r.data.state === "done") { updateProgress(r.data.progress); showDone(r.data.html); return null; }
      if (r.ok && r.data.state === "busy") {
        showStuck("You already hold tasks in this project, probably in another tab or window. Finish them there, or reload this page.");
        return null;
      }
      showStuck(r.data.detail || "Something went wrong.");
      return null;
    });
  }

  // --- wiring one task's controls ---------------------------------------------------------

  function wire(task) {
    if (task.wired) return;
    task.wired = true;
    var el = task.el;
    var form = el.querySelector(".task-form");
    form.addEventListener("submit", function (e) { e.preventDefault(); submit(); });
    form.addEventListener("change", function (e) {
      formError(task, "");
      if (e.target.name === "choice") onChoice(task);
      if (e.target.name === "flagged") onFlag(task, false);
    });
    el.querySelector("[data-action=skip]").addEventListener("click", openSkip);
    if (task.kind === "ranking") wireRanking(task);
    // an AI judge's pre-annotation arrives preselected: show it as chosen
    if (task.kind !== "ranking" && el.querySelector("input[name=choice]:checked")) onChoice(task);
  }

  function onChoice(task) {
    var checked = task.el.querySelector("input[name=choice]:checked");
    var value = checked ? checked.value : "";
    var strength = task.el.querySelector("fieldset.strength");
    if (strength) {
      var on = value === "left" || value === "right";
      strength.disabled = !on;
      if (!on) strength.querySelectorAll("input").forEach(function (i) { i.checked = false; });
    }
    task.el.querySelectorAll(".response").forEach(function (card) {
      var pos = card.dataset.position;
      card.classList.toggle("is-preferred", (value === "left" && pos === "0") || (value === "right" && pos === "1"));
      card.classList.toggle("is-bad", value === "both_bad");
    });
  }

  function onFlag(task, focus) {
    var box = task.el.querySelector("input[name=flagged]");
    var reason = task.el.querySelector(".flag-reason");
    reason.hidden = !box.checked;
    task.el.classList.toggle("is-flagged", box.checked);
    if (box.checked && focus) reason.querySelector("input").focus();
  }

  function setChoice(value) {
    var input = current.el.querySelector("input[name=choice][value=" + value + "]");
    if (!input) return;
    input.checked = true;
    formError(current, "");
    onChoice(current);
  }

  function setStrength(value) {
    var fs = current.el.querySelector("fieldset.strength");
    if (!fs) return;
    if (fs.disabled) { formError(current, "Pick response 1 or 2 first, then how much better it is."); return; }
    fs.querySelector("input[value='" + value + "']").checked = true;
  }

  // --- ranking ---------------------------------------------------------------------------------

  function items(task) { return Array.prototype.slice.call(task.el.querySelectorAll(".rank-item")); }

  function renumber(task) {
    var list = items(task);
    var rank = 0;
    list.forEach(function (li, i) {
      if (i === 0) delete li.dataset.tied;
      if (!li.dataset.tied) rank += 1;
      li.querySelector(".rank-num").textContent = rank;
      li.classList.toggle("is-selected", i === task.selected);
      li.setAttribute("aria-selected", i === task.selected ? "true" : "false");
      var tie = li.querySelector("[data-tie]");
      if (tie) { tie.setAttribute("aria-pressed", li.dataset.tied ? "true" : "false"); tie.disabled = i === 0; }
      var card = task.el.querySelector(".response[data-position='" + li.dataset.position + "']");
      if (card) {
        card.querySelector("[data-rank-badge]").textContent = "#" + rank + (li.dataset.tied || (list[i + 1] && list[i + 1].dataset.tied) ? " (tie)" : "");
        card.classList.toggle("is-selected", i === task.selected);
      }
    });
  }

  function rankingGroups(task) {
    var groups = [];
    items(task).forEach(function (li, i) {
      var pos = Number(li.dataset.position);
      if (i > 0 && li.dataset.tied) groups[groups.length - 1].push(pos);
      else groups.push([pos]);
    });
    return groups;
  }

  function touched(task) { task.touched = true; task.confirmUntouched = false; formError(task, ""); }

  function moveTo(task, from, to) {
    var list = items(task);
    if (from < 0 || from >= list.length) return;
    to = Math.max(0, Math.min(list.length - 1, to));
    var li = list[from];
    delete li.dataset.tied;
    var ol = li.parentNode;
    if (to === from) { touched(task); renumber(task); return; }
    // Taking the item out of the list drops the focus of a button inside it: put it back, so a
    // keyboard user can press "Move down" again.
    var focused = li.contains(document.activeElement) ? document.activeElement : null;
    ol.removeChild(li);
    var rest = items(task);
    if (to >= rest.length) ol.appendChild(li); else ol.insertBefore(li, rest[to]);
    if (focused) focused.focus();
    task.selected = to;
    touched(task);
    renumber(task);
  }

  function toggleTie(task, index) {
    var ol = task.el.querySelector(".rank-list");
    if (!ol.dataset.ties) { formError(task, "This project does not allow ties in rankings."); return; }
    var li = items(task)[index];
    if (!li || index === 0) return;
    if (li.dataset.tied) delete li.dataset.tied; else li.dataset.tied = "1";
    touched(task);
    renumber(task);
  }

  function select(task, index) {
    var n = items(task).length;
    task.selected = Math.max(0, Math.min(n - 1, index));
    renumber(task);
    var li = items(task)[task.selected];
    if (li && task.el.contains(document.activeElement) && document.activeElement.classList.contains("rank-item")) li.focus();
  }

  function wireRanking(task) {
    var ol = task.el.querySelector(".rank-list");
    ol.addEventListener("click", function (e) {
      var li = e.target.closest(".rank-item");
      if (!li) return;
      var index = items(task).indexOf(li);
      var btn = e.target.closest("button");
      if (btn && btn.dataset.move === "up") moveTo(task, index, index - 1);
      else if (btn && btn.dataset.move === "down") moveTo(task, index, index + 1);
      else if (btn && btn.hasAttribute("data-tie")) toggleTie(task, index);
      else select(task, index);
    });
    task.el.querySelectorAll(".ranking-responses .response").forEach(function (card) {
      card.addEventListener("click", function (e) {
        if (e.target.closest("a, input, label, button")) return;
        var index = items(task).findIndex(function (li) { return li.dataset.position === card.dataset.position; });
        select(task, index);
      });
    });
    if (window.Sortable) {
      window.Sortable.create(ol, {
        animation: 120,
        filter: "button",
        preventOnFilter: false,
        ghostClass: "rank-ghost",
        chosenClass: "rank-chosen",
        onEnd: function (evt) {
          var li = evt.item;
          if (evt.oldIndex !== evt.newIndex) delete li.dataset.tied;
          task.selected = items(task).indexOf(li);
          touched(task);
          renumber(task);
        },
      });
    }
  }

  function rankingKey(e) {
    var task = current;
    var k = e.key;
    var down = k === "ArrowDown" || k === "j" || k === "J";
    var up = k === "ArrowUp" || k === "k" || k === "K";
    var inList = document.activeElement && document.activeElement.classList.contains("rank-item");
    if ((up || down) && e.shiftKey) {
      e.preventDefault();
      moveTo(task, task.selected, task.selected + (down ? 1 : -1));
      return true;
    }
    if ((up || down) && (inList || k.length === 1)) {
      e.preventDefault();
      select(task, task.selected + (down ? 1 : -1));
      return true;
    }
    if (/^[1-9]$/.test(k)) {
      e.preventDefault();
      var n = items(task).length;
      var to = Number(k) - 1;
      if (to >= n) { formError(task, "There are only " + n + " positions."); return true; }
      moveTo(task, task.selected, to);
      return true;
    }
    if (k === "t" || k === "T") { e.preventDefault(); toggleTie(task, task.selected); return true; }
    return false;
  }

  function pairwiseKey(e) {
    var map = { 1: "left", 2: "right", 3: "tie", 4: "both_bad" };
    var k = e.key;
    if (map[k]) { e.preventDefault(); setChoice(map[k]); return true; }
    var strength = { q: "1", w: "2", e: "3" }[k.toLowerCase()];
    if (strength) { e.preventDefault(); setStrength(strength); return true; }
    return false;
  }

  // --- submit, skip, undo ---------------------------------------------------------------------

  function collect(task) {
    var form = task.el.querySelector(".task-form");
    var fd = new FormData(form);
    var payload = {
      rationale: String(fd.get("rationale") || ""),
      flagged: fd.get("flagged") !== null,
      flag_reason: String(fd.get("flag_reason") || "").trim(),
      time_spent_ms: task.timer.value(),
      ratings: {},
    };
    task.el.querySelectorAll("fieldset.rating").forEach(function (fs) {
      var checked = fs.querySelector("input:checked");
      if (!checked) return;
      var dim = fs.dataset.dimension;
      payload.ratings[dim] = payload.ratings[dim] || {};
      payload.ratings[dim][fs.dataset.position] = Number(checked.value);
    });
    if (task.kind === "pairwise") {
      payload.choice = fd.get("choice") || null;
      var s = fd.get("strength");
      payload.strength = s && (payload.choice === "left" || payload.choice === "right") ? Number(s) : null;
    } else {
      payload.ranking = rankingGroups(task);
    }
    return payload;
  }

  // A submit that did not go through keeps a copy of the answer in this tab (sessionStorage), so a
  // reload that shows the same task (the lease is still the labeler's) puts it back.
  var DRAFT_PREFIX = "prefhub-label-draft-";
  function saveDraft(task) {
    var fields = {};
    Array.prototype.forEach.call(task.el.querySelector(".task-form").elements, function (el) {
      if (!el.name || el.type === "button" || el.type === "submit") return;
      if (el.type === "radio" || el.type === "checkbox") { if (el.checked) fields[el.name] = el.value; }
      else if (el.value) fields[el.name] = el.value;
    });
    var order = items(task).map(function (li) { return [li.dataset.position, li.dataset.tied ? 1 : 0]; });
    try { sessionStorage.setItem(DRAFT_PREFIX + task.id, JSON.stringify({ fields: fields, order: order, touched: task.touched })); } catch (e) { /* storage full or off */ }
  }
  function forgetDrafts(keepId) {
    try {
      Object.keys(sessionStorage).forEach(function (k) {
        if (k.indexOf(DRAFT_PREFIX) === 0 && k !== DRAFT_PREFIX + keepId) sessionStorage.removeItem(k);
      });
    } catch (e) { /* storage off */ }
  }
  function restoreDraft(task) {
    var draft = null;
    try { draft = JSON.parse(sessionStorage.getItem(DRAFT_PREFIX + task.id) || "null"); } catch (e) { draft = null; }
    if (!draft || typeof draft.fields !== "object") return false;
    var form = task.el.querySelector(".task-form");
    form.querySelectorAll("input[type=radio], input[type=checkbox]").forEach(function (el) {
      el.checked = Object.prototype.hasOwnProperty.call(draft.fields, el.name) && draft.fields[el.name] === el.value;
    });
    form.querySelectorAll("textarea, input[type=text]").forEach(function (el) {
      if (Object.prototype.hasOwnProperty.call(draft.fields, el.name)) el.value = String(draft.fields[el.name]);
    });
    var ol = task.el.querySelector(".rank-list");
    if (ol && Array.isArray(draft.order)) {
      draft.order.forEach(function (entry) {
        var li = ol.querySelector(".rank-item[data-position='" + Number(entry[0]) + "']");
        if (!li) return;
        if (entry[1]) li.dataset.tied = "1"; else delete li.dataset.tied;
        ol.appendChild(li);
      });
      task.touched = !!draft.touched;
    }
    onFlag(task, false);
    return true;
  }

  function validate(task, p) {
    if (p.flagged && !p.flag_reason) {
      return { text: "Say why you are flagging this task.", focus: task.el.querySelector("input[name=flag_reason]") };
    }
    if (p.flagged) return null; // a flag may go without a judgment
    if (task.kind === "pairwise" && !p.choice) {
      return { text: "Choose which response is better (press 1 or 2" + (cfg.allowTie ? ", 3 for a tie" : "") + (cfg.allowBothBad ? ", 4 if both are bad" : "") + ")." };
    }
    var missing = null;
    task.el.querySelectorAll("fieldset.rating[data-required]").forEach(function (fs) {
      if (!missing && !fs.querySelector("input:checked")) missing = fs;
    });
    if (missing) {
      return { text: "Rate every response on “" + missing.querySelector("legend").firstChild.textContent.trim() + "”.", focus: missing.querySelector("input") };
    }
    if (task.kind === "ranking" && !task.touched && !task.confirmUntouched) {
      task.confirmUntouched = true;
      return { text: "You haven't changed the order. Press Ctrl+Enter (or Submit) again to submit it as shown." };
    }
    return null;
  }

  // While the answer is on its way it cannot change on screen (the page sent it already): the
  // form takes no clicks or typing, and the task's keys are answered with "Still saving".
  function setSubmitting(task, on) {
    var btn = task.el.querySelector(".btn-submit");
    if (btn) btn.disabled = on;
    var form = task.el.querySelector(".task-form");
    var hadFocus = form && form.contains(document.activeElement);
    if (form) form.inert = on;
    if (hadFocus && task === current) task.el.focus({ preventScroll: true });
    task.el.classList.toggle("is-submitting", on);
  }

  function handleError(task, r) {
    var code = r.data.error;
    var detail = r.data.detail || "Something went wrong (" + r.status + ").";
    updateProgress(r.data.progress); // a lease that ended answers with what the server counted
    if (code === "guideline_not_acknowledged") {
      formError(task, detail);
      openAck();
    } else if (code === "membership_ended") {
      // Removed from the project while this page was open: say so in the banner (the answer stays
      // on screen; there is no next task to move on to).
      showNotice(detail);
    } else if (code === "lease_expired" || code === "lease_not_live" || r.status === 404) {
      showNotice(detail + " Here is the next task.");
      if (current === task) advance();
    } else {
      formError(task, detail);
    }
  }

  function submit() {
    if (!current) {
      if (!loading.hidden) showToast("The next task is still loading: nothing was submitted. Press Ctrl+Enter again once it is on screen.", false);
      return;
    }
    if (busy) { showToast("Still saving your last action: press Ctrl+Enter again in a moment.", false); return; }
    var task = current;
    var p = collect(task);
    var problem = validate(task, p);
    if (problem) { formError(task, problem.text, problem.focus); return; }
    busy = true;
    setSubmitting(task, true);
    post(actionUrl(cfg.urls.submit, task.id), p)
      .then(function (r) {
        if (!r.ok) { handleError(task, r); return; }
        task.timer.pause();
        forgetDrafts(null);
        lastSubmitted = { task: task };
        updateProgress(r.data.progress);
        hideNotice();
        showToast(r.data.message || "Submitted.", true);
        return advance();
      })
      .catch(function () {
        saveDraft(task);
        formError(task, "Could not reach the server. Your answer is still here: try again.");
      })
      .then(function () { busy = false; setSubmitting(task, false); });
  }

  // The task whose skip did not go through (offline, refused): its dialog opens again as the
  // labeler left it, reason and all, to try again.
  var skipRetryFor = null;

  function openSkip() {
    if (!current || busy || dialogOpen()) return;
    var form = skipDialog.querySelector("form");
    if (skipRetryFor !== current) form.reset();
    skipDialog.showModal();
    var first = form.querySelector("input[name=skip_reason]:checked");
    if (first) first.focus();
  }

  skipDialog.querySelector("form").addEventListener("submit", function (e) {
    e.preventDefault();
    var form = e.target;
    var choice = form.querySelector("input[name=skip_reason]:checked");
    var reason = choice ? choice.value : "";
    if (reason === "other") reason = form.querySelector("input[name=skip_other]").value.trim();
    if (!reason) {
      var other = form.querySelector("input[name=skip_other]");
      other.focus();
      other.setAttribute("aria-invalid", "true");
      return;
    }
    skipDialog.close();
    doSkip(reason);
  });
  skipDialog.addEventListener("keydown", function (e) {
    // only while open: a key from a control the closed dialog still holds the focus on must not
    // send it (Ctrl+Enter meant for the task skipped it)
    if (!skipDialog.open) return;
    if (e.key === "Enter" && !e.isComposing && e.target.tagName !== "BUTTON") {
      e.preventDefault();
      skipDialog.querySelector("form").requestSubmit();
    }
  });
  // A closed dialog gives the focus back to the task on screen: Chromium may leave it on the
  // dialog's control, hidden now, where the labeler's next keys would go.
  [skipDialog, helpDialog, ackDialog].forEach(function (dialog) {
    dialog.addEventListener("close", function () {
      var active = document.activeElement;
      if (current && (!active || active === document.body || dialog.contains(active))) {
        current.el.focus({ preventScroll: true });
      }
    });
  });
  skipDialog.querySelector("input[name=skip_other]").addEventListener("input", function (e) {
    var radio = skipDialog.querySelector("input[name=skip_reason][value=other]");
    if (e.target.value) radio.checked = true;
    e.target.removeAttribute("aria-invalid");
  });

  function doSkip(reason) {
    if (!current || busy) return;
    var task = current;
    busy = true;
    setSubmitting(task, true);
    skipRetryFor = task;
    post(actionUrl(cfg.urls.skip, task.id), { reason: reason })
      .then(function (r) {
        if (!r.ok) { handleError(task, r); return; }
        skipRetryFor = null;
        task.timer.pause();
        // lastSubmitted stays: Backspace still takes back the last submission (a skip is no submission)
        updateProgress(r.data.progress);
        hideNotice();
        showToast("Skipped. It goes to someone else.", false);
        return advance();
      })
      .catch(function () { formError(task, "Could not reach the server. Try again."); })
      .then(function () { busy = false; setSubmitting(task, false); });
  }

  function undo() {
    if (busy) { showToast("Still saving your last action: press Backspace again in a moment.", false); return; }
    if (!lastSubmitted) { showNotice("Nothing to undo.", "info"); return; }
    var task = lastSubmitted.task;
    if (task.expiresAt <= Date.now()) {
      lastSubmitted = null;
      hideToast();
      showNotice("Too late to undo: the lease on that task has ended.");
      return;
    }
    busy = true;
    // A prefetch in flight lands first: the undo may give that very lease back.
    Promise.resolve(inflight)
      .then(function () { return post(actionUrl(cfg.urls.undo, task.id), {}); })
      .then(function (r) {
        lastSubmitted = null;
        hideToast();
        if (!r.ok) { updateProgress(r.data.progress); showNotice(r.data.detail || "Could not undo."); return; }
        task.expiresAt = Date.parse(r.data.expires_at);
        // The undone task is live again; to stay within the live-lease cap the server gave back
        // the preloaded task (released_assignment_ids): drop it, it is no longer ours.
        var released = r.data.released_assignment_ids || [];
        var kept = function (t) { return released.indexOf(t.id) === -1; };
        queue = queue.filter(kept);
        if (released.length) noMore = false; // a task went back to the pool: ask again later
        if (current) { current.timer.pause(); if (kept(current)) queue.unshift(current); }
        show(task);
        updateProgress(r.data.progress);
        showNotice("Undone. Change your answer and submit again.", "info");
      })
      .catch(function () { showNotice("Could not reach the server to undo."); })
      .then(function () { busy = false; });
  }

  // --- guidelines -------------------------------------------------------------------------------

  function toggleDrawer(force) {
    var open = force === undefined ? drawer.hidden : force;
    drawer.hidden = !open;
    document.body.classList.toggle("drawer-open", open);
    // The keys scroll what has the focus: put it in the guidelines while they are open, and give
    // it back to the task when they close.
    var body = document.getElementById("drawer-guideline");
    var active = document.activeElement;
    if (open) body.focus({ preventScroll: true });
    else if (current && (!active || active === document.body || drawer.contains(active))) current.el.focus({ preventScroll: true });
  }

  // Shows the current guidelines to acknowledge when they are pending; resolves to whether it did,
  // or to null when they could not be loaded (offline: the labeler is told, and submitting again
  // asks once more).
  function openAck() {
    return get(cfg.urls.guideline).catch(function () {
      var text = "Could not load the updated guidelines: check your connection.";
      if (ackDialog.open) ackDialog.querySelector(".ack-note").textContent = text + " Nothing was recorded; press the button again.";
      else showNotice(text + " Then press Ctrl+Enter to read and acknowledge them.");
      return null;
    }).then(function (r) {
      if (r === null) return null;
      if (!r.ok || !r.data.guideline || !r.data.pending) return false;
      var g = r.data.guideline;
      ackDialog.dataset.guidelineId = g.id;
      ackDialog.querySelector("#ack-title").textContent = "Updated guidelines: version " + g.version;
      ackDialog.querySelector(".ack-note").textContent = g.change_note ? "What changed: " + g.change_note : "Please read them before you go on.";
      ackDialog.querySelector(".ack-body").innerHTML = g.html; // sanitized server-side (annotate.rendering)
      document.getElementById("drawer-guideline").innerHTML = g.html;
      var v = document.getElementById("drawer-version");
      if (v) v.textContent = "v" + g.version;
      if (!ackDialog.open) ackDialog.showModal();
      ackDialog.querySelector("[data-action=ack]").focus();
      return true;
    });
  }

  function acknowledged() {
    ackDialog.close();
    queue.forEach(function (t) { t.guidelinePending = false; });
    if (current) { current.guidelinePending = false; formError(current, ""); }
  }

  ackDialog.addEventListener("cancel", function (e) { e.preventDefault(); });
  ackDialog.querySelector("[data-action=ack]").addEventListener("click", function () {
    post(cfg.urls.ack, { guideline_id: Number(ackDialog.dataset.guidelineId) }).then(function (r) {
      if (!r.ok && r.data.error === "guideline_not_current") {
        // A newer version came out while these were open; nothing was recorded. Show the current
        // version in the dialog, with the server's word on why, to read and acknowledge.
        return openAck().then(function (shown) {
          if (shown) ackDialog.querySelector(".ack-note").textContent = r.data.detail;
          else if (shown === false) acknowledged(); // the current version was acknowledged meanwhile (another tab)
        });
      }
      if (!r.ok) { showNotice(r.data.detail || "Could not record your acknowledgement."); return; }
      acknowledged();
      if (r.data.pending) { openAck(); return; }
      showNotice("Thanks. You can go on labeling now.", "info");
    }).catch(function () {
      // Offline or the connection dropped: say so in the dialog (a notice would sit behind it);
      // the dialog stays open for another try. The request may have been recorded with only its
      // answer lost: pressing again is harmless (an acknowledgement is recorded once).
      ackDialog.querySelector(".ack-note").textContent =
        "Could not reach the server: your acknowledgement may not have been recorded. Check your connection and press the button again.";
    });
  });

  // --- keyboard -------------------------------------------------------------------------------

  document.addEventListener("keydown", function (e) {
    if (e.defaultPrevented || e.isComposing) return;
    var t = e.target;
    if ((e.ctrlKey || e.metaKey) && e.key === "Enter") {
      if (!dialogOpen()) { e.preventDefault(); submit(); }
      return;
    }
    if (dialogOpen()) return; // dialogs handle their own keys; Esc closes them
    if (isTyping(t)) {
      // Enter in a one-line box of the task (the flag's reason) confirms it and leaves it, like
      // Esc: the browser would otherwise submit the whole task (submitting is Ctrl+Enter).
      var leave = e.key === "Escape" || (e.key === "Enter" && t.tagName === "INPUT" && t.closest(".task-form"));
      if (leave) { e.preventDefault(); t.blur(); if (current) current.el.focus({ preventScroll: true }); }
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey) return; // leave the browser's shortcuts alone
    var k = e.key;
    if (k === "?") { e.preventDefault(); helpDialog.showModal(); return; }
    if (k === "g" || k === "G") { e.preventDefault(); toggleDrawer(); return; }
    if (k === "Escape") { if (!drawer.hidden) toggleDrawer(false); hideNotice(); return; }
    if (k === "Backspace") { e.preventDefault(); undo(); return; }
    if (!current) return;
    if (busy) {
      if (k.length === 1 || k.indexOf("Arrow") === 0) {
        e.preventDefault();
        showToast("Still saving your last action: nothing changed. Press the key again in a moment.", false);
      }
      return;
    }
    // Space scrolls the guidelines when they have the focus; elsewhere it skips.
    if (k === "s" || k === "S" || (k === " " && !isControl(t) && !drawer.contains(t))) { e.preventDefault(); openSkip(); return; }
    if (k === "f" || k === "F") {
      e.preventDefault();
      var box = current.el.querySelector("input[name=flagged]");
      box.checked = !box.checked;
      onFlag(current, true);
      return;
    }
    if (k === "r" || k === "R") { e.preventDefault(); current.el.querySelector("textarea[name=rationale]").focus(); return; }
    if (k === "p" || k === "P") { e.preventDefault(); showPrompt(); return; }
    if (ratingKey(e)) return;
    if (current.kind === "pairwise") pairwiseKey(e);
    else rankingKey(e);
  });

  // --- page-level buttons -----------------------------------------------------------------------

  document.addEventListener("click", function (e) {
    var btn = e.target.closest("[data-action], [data-close]");
    if (!btn) return;
    if (btn.hasAttribute("data-close")) { var d = btn.closest("dialog"); if (d) d.close(); return; }
    var action = btn.dataset.action;
    if (action === "guidelines") toggleDrawer();
    else if (action === "help") helpDialog.showModal();
    else if (action === "undo") undo();
    else if (action === "dismiss-notice") hideNotice();
    else if (action === "show-prompt") showPrompt();
  });

  // --- lease countdown ---------------------------------------------------------------------------

  function updateLeaseNote() {
    if (!current) return;
    var note = current.el.querySelector(".lease-note");
    if (!note) return;
    var left = current.expiresAt - Date.now();
    if (left <= 0) note.textContent = "Your time on this task ran out; it went back to the pool.";
    else if (left < 3 * 60 * 1000) note.textContent = "Time left on this task: " + fmtClock(left);
    else note.textContent = "";
    note.classList.toggle("is-urgent", left < 60 * 1000);
  }
  setInterval(function () { keepLease(); updateLeaseNote(); }, 1000);

  // --- start ---------------------------------------------------------------------------------------

  var first = makeTask(slot.querySelector(".task"));
  forgetDrafts(first ? first.id : null);
  if (first) {
    current = first;
    first.el.setAttribute("tabindex", "-1"); // focusable, as show() makes every later task
    if (restoreDraft(first)) showNotice("What you entered before the page was reloaded is back: check it and submit again.", "info");
    wire(first);
    first.timer.start();
    if (first.kind === "ranking") renumber(first);
    watchPrompt(first);
    measureBars();
    updateLeaseNote();
    prefetch();
  }
})();
