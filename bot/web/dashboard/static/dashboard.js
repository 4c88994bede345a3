// The dashboard's little script (no inline scripts: the Content-Security-Policy allows only this server's files).
// - a form with data-confirm asks first;
// - a submitted form's buttons are disabled, so a double click sends it once (the server holds too: op ids);
// - fetch calls can read the CSRF token from <meta name="csrf-token">.
"use strict";
window.shokaiCsrf = function () {
  var meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
};
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (!(form instanceof HTMLFormElement)) return;
  var question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
    return;
  }
  if (form.method.toLowerCase() === "post") {
    setTimeout(function () {
      form.querySelectorAll("button[type=submit], input[type=submit]").forEach(function (b) { b.disabled = true; });
    }, 0);
  }
});
