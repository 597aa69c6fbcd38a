// Forms with data-confirm ask before they are sent (instead of an inline onsubmit handler, which
// the Content-Security-Policy refuses).
document.addEventListener("submit", function (event) {
  var message = event.target.getAttribute && event.target.getAttribute("data-confirm");
  if (message && !window.confirm(message)) event.preventDefault();
});
