// signoff inbox: SLA countdowns, the live queue (server-sent events), and checks before a
// decision is submitted. No framework, no build step. The server checks everything again.
"use strict";

(function () {
  function countdownText(due) {
    var seconds = Math.round((due - Date.now()) / 1000);
    var late = seconds < 0;
    seconds = Math.abs(seconds);
    var d = Math.floor(seconds / 86400), h = Math.floor((seconds % 86400) / 3600);
    var m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    var text = d ? d + " d " + h + " h" : h ? h + " h " + String(m).padStart(2, "0") + " min"
      : m ? m + " min" : s + " s";
    return late ? "overdue by " + text : "in " + text;
  }

  function tick() {
    document.querySelectorAll(".countdown[data-due]").forEach(function (el) {
      var iso = el.getAttribute("data-due");
      if (!iso) { return; }
      var due = Date.parse(iso);
      if (isNaN(due)) { return; }
      el.textContent = countdownText(due);
      el.classList.toggle("overdue", due < Date.now());
    });
  }

  function liveQueue(tbody) {
    var status = document.getElementById("live-status");
    var source = null;
    var opened = false;
    function refresh(reason) {
      var checked = {};
      tbody.querySelectorAll("input[name=ids]:checked").forEach(function (box) {
        checked[box.value] = true;
      });
      var before = tbody.querySelectorAll("tr[data-id]").length;
      return fetch(tbody.getAttribute("data-src"), { credentials: "same-origin" })
        .then(function (response) {
          if (response.status === 401) { window.location.assign("/login"); return null; }
          return response.ok ? response.text() : null;
        })
        .then(function (html) {
          if (html === null) { return; }
          tbody.innerHTML = html;
          tbody.querySelectorAll("input[name=ids]").forEach(function (box) {
            if (checked[box.value]) { box.checked = true; }
          });
          tick();
          var after = tbody.querySelectorAll("tr[data-id]").length;
          if (status && reason) {
            status.textContent = reason + ": " + after + " request(s) waiting" +
              (after > before ? " (" + (after - before) + " new)" : "") + ".";
          }
        })
        .catch(function () { /* the next event or the periodic refresh tries again */ });
    }
    function connect() {
      source = new EventSource(tbody.getAttribute("data-live"));
      source.addEventListener("open", function () {
        if (opened) { refresh(""); }  // quietly: streams end every 20 s by design
        opened = true;
        document.body.setAttribute("data-live", "connected");
      });
      ["created", "closed", "updated"].forEach(function (kind) {
        source.addEventListener(kind, function () {
          refresh(kind === "created" ? "New request" : "Queue updated");
        });
      });
    }
    connect();
    window.setInterval(function () { refresh(""); }, 30000);
    window.addEventListener("pagehide", function () { if (source) { source.close(); } });
  }

  function showError(el, message) {
    if (!el) { return; }
    el.textContent = message;
    el.hidden = !message;
  }

  function decideForm(form) {
    ["arguments", "comment"].forEach(function (id) {
      var field = document.getElementById(id);
      if (!field) { return; }
      field.addEventListener("input", function () {
        showError(document.getElementById(id + "-error"), "");
        field.removeAttribute("aria-invalid");
      });
    });
    form.addEventListener("submit", function (event) {
      var verdict = event.submitter ? event.submitter.value : "";
      var args = document.getElementById("arguments");
      var comment = document.getElementById("comment");
      var argsError = document.getElementById("arguments-error");
      var commentError = document.getElementById("comment-error");
      showError(argsError, "");
      showError(commentError, "");
      if (verdict === "edit" && args) {
        var parsed;
        try {
          parsed = JSON.parse(args.value);
        } catch (err) {
          event.preventDefault();
          showError(argsError, "The arguments are not valid JSON: " + err.message);
          args.setAttribute("aria-invalid", "true");
          args.focus();
          return;
        }
        if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
          event.preventDefault();
          showError(argsError, "The arguments must be a JSON object ({…}).");
          args.setAttribute("aria-invalid", "true");
          args.focus();
          return;
        }
        args.removeAttribute("aria-invalid");
      }
      var required = (comment && comment.getAttribute("data-required-for") || "").split(" ");
      if (comment && required.indexOf(verdict) >= 0 && !comment.value.trim()) {
        event.preventDefault();
        showError(commentError, "A comment is required to " + verdict + " this request.");
        comment.setAttribute("aria-invalid", "true");
        comment.focus();
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    tick();
    window.setInterval(tick, 1000);
    var tbody = document.getElementById("queue-rows");
    if (tbody && tbody.getAttribute("data-live") && window.EventSource) { liveQueue(tbody); }
    var form = document.getElementById("decide-form");
    if (form) { decideForm(form); }
  });
})();
