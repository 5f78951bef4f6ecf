// logship web UI: keyboard conveniences and the copy button. Every page works without this
// file; it only adds: "/" focuses the Delivery ID field, j / k move between events, Enter
// expands the focused event, and "Copy" puts an event's JSON on the clipboard.
// Plain script, no build step, nothing loaded from elsewhere (the CSP allows only 'self').
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function typing(target) {
    var tag = target && target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" ||
      (target && target.isContentEditable);
  }

  function events() {
    return Array.prototype.slice.call(document.querySelectorAll("tr.event"));
  }

  function focusRow(row) {
    if (!row) { return; }
    events().forEach(function (r) { r.classList.remove("current"); });
    row.classList.add("current");
    row.focus();
    row.scrollIntoView({ block: "nearest" });
    if (row.id && history.replaceState) { history.replaceState(null, "", "#" + row.id); }
  }

  function move(step) {
    var rows = events();
    if (!rows.length) { return; }
    var at = rows.indexOf(document.querySelector("tr.event.current"));
    if (at < 0) { at = rows.indexOf(document.activeElement); }
    var next = at < 0 ? (step > 0 ? 0 : rows.length - 1) :
      Math.max(0, Math.min(rows.length - 1, at + step));
    focusRow(rows[next]);
  }

  function toggle(row) {
    var details = row && row.querySelector("details");
    if (details) { details.open = !details.open; }
  }

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) { return; }
    if (typing(e.target)) {
      if (e.key === "Escape") { e.target.blur(); }
      return;
    }
    if (e.key === "/") {
      var q = document.getElementById("q");
      if (q) { e.preventDefault(); q.focus(); q.select(); }
    } else if (e.key === "j") {
      move(1);
    } else if (e.key === "k") {
      move(-1);
    } else if (e.key === "Enter" && e.target.classList &&
               e.target.classList.contains("event")) {
      e.preventDefault();
      toggle(e.target);
    }
  });

  document.addEventListener("click", function (e) {
    var button = e.target.closest ? e.target.closest("button.copy") : null;
    if (!button) { return; }
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) { return; }
    var text = source.textContent;
    var done = function () {
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = "Copy"; }, 1500);
    };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(done, function () { select(source); });
    } else {
      select(source);
    }
  });

  function select(node) {
    var range = document.createRange();
    range.selectNodeContents(node);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var q = document.getElementById("q");
    if (q && q.hasAttribute("data-focus")) { q.focus(); }
    var target = null;
    try {
      target = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
    } catch (err) { target = null; }  // a malformed fragment: nothing to jump to
    if (target && target.classList.contains("event")) {
      focusRow(target);
      var details = target.querySelector("details");
      if (details) { details.open = true; }
    }
  });
})();
