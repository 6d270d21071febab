// keyrotator console: copy buttons, read-only forms, one post per form, no post again on a
// reload. Served from our own origin (script-src 'self'); no inline script anywhere, so the
// page's Content-Security-Policy needs no exception.
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
  // a suspended tenant's pages read but cannot write (the server refuses every POST): its
  // forms are shown disabled, so nobody fills one in for nothing
  function readOnly(root) {
    if (!document.querySelector("[data-read-only]")) return;
    root.querySelectorAll(
      'form[method="post"]:not(.signout) button, form[method="post"]:not(.signout) input, ' +
      'form[method="post"]:not(.signout) textarea, form[method="post"]:not(.signout) select'
    ).forEach(function (el) { el.disabled = true; });
  }
  readOnly(document);
  // a form posts once: a second click before the answer arrives would post it again, and the
  // browser shows only the second answer (a duplicate refused, or a token replaced by another
  // before it was seen). htmx forms need nothing: htmx sends one request at a time per
  // element (tests/browser: test_a_second_click_before_the_answer_posts_nothing).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.method !== "post" || form.hasAttribute("hx-post")) return;
    if (form.hasAttribute("data-posted")) event.preventDefault();
    else form.setAttribute("data-posted", "");
  });
  // a token shown once came in answer to a post: a reload would post the form again and
  // issue another token (or create another app). The page's own address replaces the
  // post in the history, so a reload shows that page, the token gone as promised.
  var once = document.querySelector("[data-reload-as]");
  if (once) history.replaceState(null, "", once.getAttribute("data-reload-as"));
  // a page restored by Back (the bfcache) is as it was left: its forms may post again
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    document.querySelectorAll("form[data-posted]").forEach(function (form) {
      form.removeAttribute("data-posted");
    });
  });
  document.addEventListener("htmx:load", function (event) { readOnly(event.target); });
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
