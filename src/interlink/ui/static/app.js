// Interlink dashboard: copy buttons, confirmation prompts, auto-submitting selects and the
// endpoint form's channel fields.
(function () {
  "use strict";

  function copyFrom(input, status) {
    var done = function () { if (status) { status.textContent = "Copied to the clipboard."; } };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(done, function () {
        input.select();
        if (status) { status.textContent = "Select the key and copy it."; }
      });
      return;
    }
    input.focus();
    input.select();
    try { if (document.execCommand("copy")) { done(); return; } } catch (e) { /* fall through */ }
    if (status) { status.textContent = "Select the key and copy it."; }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) { return; }
    var input = document.getElementById(button.getAttribute("data-copy"));
    if (input) { copyFrom(input, document.querySelector(".copy-status")); }
  });

  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) { event.preventDefault(); }
  });

  document.addEventListener("change", function (event) {
    if (event.target.matches("select[data-autosubmit]")) { event.target.form.requestSubmit(); }
    if (event.target.matches("select[data-channel-select]")) { showChannel(event.target); }
  });

  // Endpoint form: show only the fields of the chosen channel (all stay visible without script).
  function showChannel(select) {
    select.form.querySelectorAll("[data-channel]").forEach(function (part) {
      part.hidden = part.getAttribute("data-channel").split(" ").indexOf(select.value) < 0;
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("select[data-channel-select]").forEach(showChannel);
  });
})();
