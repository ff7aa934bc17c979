// agentcron dashboard: refresh the page's content in place every few seconds, keeping the
// URL (and so its filters). Paused while the user types in a field, has a payload form
// open, or the tab is hidden.
(function () {
  "use strict";
  var PERIOD_MS = 5000;
  var box = document.getElementById("autorefresh");
  if (!box) { return; }
  var stored = window.localStorage.getItem("agentcron.autorefresh");
  if (stored !== null) { box.checked = stored === "1"; }
  box.addEventListener("change", function () {
    window.localStorage.setItem("agentcron.autorefresh", box.checked ? "1" : "0");
  });
  function busy() {
    // An open "with payload…" form is being filled in: do not replace it under the user.
    if (document.querySelector("details.fire-payload[open]")) { return true; }
    var el = document.activeElement;
    return el && (el.tagName === "INPUT" || el.tagName === "SELECT" || el.tagName === "TEXTAREA") && el.id !== "autorefresh";
  }
  function refresh() {
    if (!box.checked || document.hidden || busy()) { return; }
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Refresh": "1" } })
      .then(function (response) {
        if (response.redirected || !response.ok) { return null; }
        return response.text();
      })
      .then(function (text) {
        if (!text || busy()) { return; }
        var doc = new DOMParser().parseFromString(text, "text/html");
        var fresh = doc.getElementById("main");
        var main = document.getElementById("main");
        if (fresh && main) { main.innerHTML = fresh.innerHTML; }
      })
      .catch(function () { /* offline for a moment: try again next time */ });
  }
  window.setInterval(refresh, PERIOD_MS);
}());
