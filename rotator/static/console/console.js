// keyrotator console: copy buttons. Served from our own origin (script-src 'self'); no inline
// script anywhere, so the page's Content-Security-Policy needs no exception.
"use strict";
(function () {
  function textOf(el) {
    return el.value !== undefined && el.tagName === "INPUT" ? el.value : el.textContent;
  }
  function say(id, message) {
    var out = document.querySelector('[data-copied-for="' + id + '"]');
    if (out) out.textContent = message;
  }
  function fallback(el) {
    // http on a non-local host has no clipboard API: select the text so Ctrl-C copies it
    if (el.select) { el.focus(); el.select(); }
    else {
      var range = document.createRange();
      range.selectNodeContents(el);
      var sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
    }
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (!button) return;
    var id = button.getAttribute("data-copy");
    var el = document.getElementById(id);
    if (!el) return;
    var value = textOf(el);
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(value).then(
        function () { say(id, "Copied to the clipboard."); },
        function () { fallback(el); say(id, "Selected: press Ctrl-C (or Cmd-C) to copy."); }
      );
    } else {
      fallback(el);
      say(id, "Selected: press Ctrl-C (or Cmd-C) to copy.");
    }
  });
})();
