// knock-sources dashboard: small conveniences on top of pages that work without JavaScript.
// Copy to clipboard, switches that save at once, confirmations, "Waiting for your first event...",
// the logs' live tail, and checking a mapping path as you type.
(function () {
  "use strict";

  document.documentElement.classList.add("js");

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain http on another host: the Clipboard API is not offered there.
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "offscreen";
      document.body.appendChild(area);
      area.select();
      var done = document.execCommand("copy");
      document.body.removeChild(area);
      if (done) { resolve(); } else { reject(new Error("copy refused")); }
    });
  }

  function setupCopy(button) {
    button.addEventListener("click", function () {
      var status = button.parentElement.querySelector(".copy-status");
      copyText(button.getAttribute("data-copy")).then(function () {
        if (status) { status.textContent = "Copied"; }
      }, function () {
        if (status) { status.textContent = "Press Ctrl+C to copy"; }
      });
    });
  }

  function setupAutosubmit(form) {
    form.querySelectorAll('input[type="checkbox"]').forEach(function (box) {
      box.addEventListener("change", function () { form.requestSubmit(); });
    });
  }

  function setupConfirm(form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  }

  function setupFirstEvent(box) {
    if (!box.querySelector(".waiting")) { return; }
    var url = box.getAttribute("data-first-event");
    var timer = window.setInterval(function () {
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (data) {
          if (!data || !data.received) { return; }
          window.clearInterval(timer);
          box.textContent = "";
          var badge = document.createElement("span");
          badge.className = "badge good";
          badge.textContent = "Event received";
          var link = document.createElement("a");
          link.href = data.log_url;
          link.textContent = data.event_type || "request";
          box.append(badge, " ", link, " (" + data.status + ") at " + data.received_at.replace("T", " ").slice(0, 19));
        })
        .catch(function () { /* try again on the next tick */ });
    }, 2000);
  }

  function setupLiveTail(toggle) {
    var body = document.querySelector("tbody[data-newer]");
    if (!body) { return; }
    var timer = null;
    function poll() {
      var url = body.getAttribute("data-newer");
      url += (url.indexOf("?") === -1 ? "?" : "&") + "since=" + encodeURIComponent(body.getAttribute("data-newest"));
      fetch(url, { credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.text() : ""; })
        .then(function (html) {
          var holder = document.createElement("tbody");
          holder.innerHTML = html.trim();
          var rows = holder.querySelectorAll("tr[data-id]");
          if (!rows.length) { return; }
          body.setAttribute("data-newest", rows[0].getAttribute("data-id"));
          for (var index = rows.length - 1; index >= 0; index -= 1) {
            rows[index].classList.add("new");
            body.insertBefore(rows[index], body.firstChild);
          }
        })
        .catch(function () { /* try again on the next tick */ });
    }
    toggle.addEventListener("change", function () {
      if (toggle.checked) {
        poll();
        timer = window.setInterval(poll, 3000);
      } else if (timer !== null) {
        window.clearInterval(timer);
        timer = null;
      }
    });
  }

  function setupPathCheck(input) {
    var status = document.getElementById(input.getAttribute("data-path-status"));
    var url = input.getAttribute("data-path-check");
    var eventInput = document.getElementById(input.getAttribute("data-event-input"));
    var pending = null;
    function check() {
      var path = input.value.trim();
      if (!path) { status.textContent = ""; status.className = "path-status"; return; }
      fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
        body: JSON.stringify({
          path: path,
          literal: input.hasAttribute("data-literal"),
          event_type: eventInput ? eventInput.value : null
        })
      })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (data) {
          if (!data || input.value.trim() !== path) { return; }
          status.className = "path-status " + data.state;
          status.textContent = data.message;
        })
        .catch(function () { /* the server check on save still applies */ });
    }
    input.addEventListener("input", function () {
      if (pending !== null) { window.clearTimeout(pending); }
      pending = window.setTimeout(check, 250);
    });
  }

  function setupSelectNavigation(select) {
    select.addEventListener("change", function () { select.form.submit(); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-copy]").forEach(setupCopy);
    document.querySelectorAll("form[data-autosubmit]").forEach(setupAutosubmit);
    document.querySelectorAll("form[data-confirm]").forEach(setupConfirm);
    document.querySelectorAll("[data-first-event]").forEach(setupFirstEvent);
    document.querySelectorAll("[data-live-tail]").forEach(setupLiveTail);
    document.querySelectorAll("[data-path-check]").forEach(setupPathCheck);
    document.querySelectorAll("select[data-navigate]").forEach(setupSelectNavigation);
  });
}());
