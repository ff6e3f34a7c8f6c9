/* Backfill progress: poll the JSON endpoint and update the bar (no inline script: CSP script-src 'self').
   Without JavaScript the page reloads itself through a <noscript> meta refresh. */
(function () {
  "use strict";
  var card = document.querySelector("[data-progress-url]");
  if (!card || card.getAttribute("data-active") !== "true") { return; }
  var url = card.getAttribute("data-progress-url");
  var delay = 2000;

  function field(name) { return card.querySelector('[data-field="' + name + '"]'); }
  function setText(name, value) {
    var el = field(name);
    if (el) { el.textContent = String(value); }
  }

  function render(data) {
    ["discovered", "synced", "failed", "remaining", "blocked", "other", "eta", "label", "percent"].forEach(function (k) {
      setText(k, data[k]);
    });
    var bar = field("bar");
    if (bar) {
      bar.style.width = data.percent + "%";
      bar.setAttribute("aria-valuenow", data.percent);
      if (data.complete) {
        bar.classList.remove("progress-bar-striped");
        bar.classList.add("bg-success");
      }
    }
    if (data.state !== "queued" && data.state !== "running") {
      var form = field("cancel-form");
      if (form) { form.parentNode.removeChild(form); }
    }
    card.setAttribute("data-active", data.active ? "true" : "false");
    card.setAttribute("data-state", data.state);
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" }, cache: "no-store" })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (data) {
        render(data);
        delay = 2000;
        if (data.active) { window.setTimeout(poll, delay); }
      })
      .catch(function () {
        delay = Math.min(delay * 2, 30000);  // back off while the server is unreachable
        window.setTimeout(poll, delay);
      });
  }

  window.setTimeout(poll, 1000);
})();
