// bulk-chats ui: send the page's actions, follow a run's progress, and swap in the regions
// the server renders again. The server renders (and escapes) everything; this script never
// builds HTML from data, it sets text and attributes only.
"use strict";

(function () {
  const token = document.body.dataset.token;
  const REGIONS = ["sheet-box", "mapping", "actions", "export-actions", "outcome"];
  const ACTIVE = new Set(["running", "confirm"]);
  let events = null;
  let lastPhase = null;
  let startedHere = false;

  function url(path, params) {
    const query = new URLSearchParams(Object.assign({ token: token }, params || {}));
    return path + "?" + query.toString();
  }

  function showError(message) {
    const alert = document.getElementById("alert");
    alert.textContent = message;
    alert.hidden = !message;
  }

  async function answer(response) {
    if (response.ok) {
      showError("");
      return true;
    }
    let message = "the server answered " + response.status;
    try {
      const body = await response.json();
      if (body && body.error) message = body.error;
    } catch (e) {
      /* not JSON: keep the status line */
    }
    showError(message);
    return false;
  }

  async function post(path, body) {
    const response = await fetch(url(path), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body || {}),
    });
    return answer(response);
  }

  function sizeBars(root) {
    root.querySelectorAll(".progress .bar").forEach(function (bar) {
      bar.style.width = (bar.dataset.width || "0") + "%";
    });
  }

  async function refresh() {
    const focused = document.activeElement && document.activeElement.id;
    const response = await fetch(url("/"));
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const id of REGIONS) {
      const now = document.getElementById(id);
      const next = fresh.getElementById(id);
      if (now && next) now.replaceWith(document.importNode(next, true));
    }
    document.title = fresh.title;
    sizeBars(document);
    const phase = document.getElementById("actions").dataset.phase;
    const ended = !ACTIVE.has(phase) && (ACTIVE.has(lastPhase) || startedHere);
    const before = focused && document.getElementById(focused);
    const stop = document.getElementById("stop");
    if (phase === "confirm" && lastPhase !== "confirm") {
      document.getElementById("confirm").focus();
    } else if (ended) {
      // The run is over: the keyboard (and a screen reader) lands on its outcome.
      const summary = document.getElementById("summary");
      if (summary) summary.focus();
    } else if (before && !before.disabled) {
      before.focus();
    } else if (ACTIVE.has(phase) && stop && !stop.disabled) {
      // The button pressed is gone or disabled now: keep the keyboard near the run.
      stop.focus();
    }
    startedHere = false;
    lastPhase = phase;
    if (ACTIVE.has(phase)) watch();
  }

  function showProgress(data) {
    const bar = document.getElementById("progress");
    if (!bar) return;
    bar.setAttribute("aria-valuemax", String(data.total));
    bar.setAttribute("aria-valuenow", String(data.done));
    bar.setAttribute("aria-valuetext", data.text || "waiting");
    const fill = bar.querySelector(".bar");
    fill.dataset.width = data.total ? String((100 * data.done) / data.total) : "0";
    sizeBars(bar);
    document.getElementById("progress-text").textContent = data.text;
  }

  function watch() {
    if (events) return;
    events = new EventSource(url("/events"));
    let seenPhase = lastPhase;
    let seenStopping = false;
    events.onmessage = function (message) {
      const data = JSON.parse(message.data);
      showProgress(data);
      if (data.phase !== seenPhase || data.stopping !== seenStopping || !ACTIVE.has(data.phase)) {
        seenPhase = data.phase;
        seenStopping = data.stopping;
        refresh();
      }
      if (!ACTIVE.has(data.phase)) close();
    };
    events.addEventListener("idle", close);
    events.onerror = function () {
      // The server restarted or the run ended as the stream closed: look again once.
      close();
      setTimeout(refresh, 1000);
    };
  }

  function close() {
    if (events) events.close();
    events = null;
  }

  async function upload(file) {
    showError("");
    const response = await fetch(url("/upload", { name: file.name }), {
      method: "POST",
      // A header a form cannot send: the server takes no upload without it.
      headers: { "content-type": "application/octet-stream", "x-bulk-chats-upload": "1" },
      body: file,
    });
    if (await answer(response)) await refresh();
  }

  document.addEventListener("change", async function (event) {
    const target = event.target;
    if (target.id === "spreadsheet" && target.files.length) {
      await upload(target.files[0]);
    } else if (target.dataset.action === "sheet") {
      if (await post("/sheet", { sheet: target.value })) await refresh();
    } else if (target.dataset.action === "mapping") {
      await post("/mapping", { field: target.dataset.field, header: target.value });
      await refresh();
    }
  });

  document.addEventListener("click", async function (event) {
    const button = event.target.closest("button");
    if (!button || button.disabled) return;
    if (button.dataset.run) {
      const key = document.getElementById("api-key");
      const body = {
        kind: button.dataset.run,
        rate: document.getElementById("rate").value,
        api_key: key && button.dataset.run !== "validate" ? key.value : "",
        chat_status: document.getElementById("chat-status").value,
        create_customers: document.getElementById("create-customers").checked,
        no_time_prefix: document.getElementById("no-time-prefix").checked,
      };
      if (await post("/run", body)) {
        startedHere = true;
        await refresh();
      }
    } else if (button.id === "export") {
      const value = function (id) {
        return document.getElementById(id).value;
      };
      const key = document.getElementById("api-key");
      const body = {
        statuses: Array.from(document.querySelectorAll("input[name=export-status]:checked")).map(
          function (box) {
            return box.value;
          }
        ),
        assignee: value("export-assignee"),
        department: value("export-department"),
        customer_email: value("export-customer-email"),
        customer_user_id: value("export-customer-user-id"),
        since: value("export-since"),
        until: value("export-until"),
        messages: document.getElementById("export-messages").checked,
        rate: value("rate"),
        api_key: key ? key.value : "",
      };
      if (await post("/export", body)) {
        startedHere = true;
        await refresh();
      }
    } else if (button.id === "confirm") {
      if (await post("/confirm", { go_on: true })) await refresh();
    } else if (button.id === "stop") {
      if (await post("/stop")) await refresh();
    }
  });

  sizeBars(document);
  lastPhase = document.getElementById("actions").dataset.phase;
  if (ACTIVE.has(lastPhase)) watch();
})();
