// bulk-chats ui: send the page's actions, show one step at a time, follow the runs, and
// swap in the regions the server renders again. The server renders (and escapes)
// everything; this script never builds HTML from data, it sets text and attributes only.
"use strict";

(function () {
  const token = document.body.dataset.token;
  const REGIONS = [
    "state",
    "stepper",
    "sheet-box",
    "mapping",
    "check-box",
    "plan-box",
    "run-box",
    "results-box",
    "export-actions",
    "runs",
  ];
  const ACTIVE = new Set(["running", "confirm"]);
  const GONE =
    "This page's server has stopped, or cannot be reached: nothing here works any more. " +
    "Start the page again to go on.";
  let step = null;
  let stepKey = null;
  let lastPhase = null;
  let seen = null;
  let refreshing = null;
  let again = false;
  let startedHere = false;
  let events = null;

  function url(path, params) {
    const query = new URLSearchParams(Object.assign({ token: token }, params || {}));
    return path + "?" + query.toString();
  }

  function state() {
    return document.getElementById("state").dataset;
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

  // A request that gets no answer at all (null): the page's server is gone, stopped or
  // killed. Said in the alert, rather than left to look as if a run still went on.
  async function reach(address, init) {
    try {
      return await fetch(address, init);
    } catch (e) {
      showError(GONE);
      if (events) events.close();
      return null;
    }
  }

  async function post(path, body) {
    const response = await reach(url(path), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body || {}),
    });
    return response !== null && answer(response);
  }

  function sizeBars(root) {
    root.querySelectorAll(".progress .bar").forEach(function (bar) {
      bar.style.width = (bar.dataset.width || "0") + "%";
    });
  }

  function focusOn(element) {
    if (element) element.focus();
  }

  function heading(name) {
    return document.querySelector('.step-panel[data-step="' + name + '"] h2');
  }

  // One step at a time: the others are hidden, so neither the eye nor a screen reader
  // nor the keyboard meets them.
  function showStep(name, focus) {
    const panel = document.querySelector('.step-panel[data-step="' + name + '"]');
    if (!panel) return;
    step = name;
    document.querySelectorAll(".step-panel").forEach(function (other) {
      other.hidden = other !== panel;
    });
    document.querySelectorAll("#stepper [data-goto]").forEach(function (button) {
      if (button.dataset.goto === name) button.setAttribute("aria-current", "step");
      else button.removeAttribute("aria-current");
    });
    if (focus) focusOn(heading(name));
  }

  // Where the keyboard lands when a run moves the page to its step: never on a button
  // that would stop or decline the run while its plan is still coming.
  function landing(phase, ended) {
    if (phase === "confirm") return document.getElementById("confirm");
    if (ended) return document.getElementById("summary") || heading(step);
    if (state().planning && step === "plan") return document.getElementById("plan-status");
    return heading(step);
  }

  async function refresh() {
    // One at a time; a call meanwhile runs once more after it.
    if (refreshing) {
      again = true;
      return refreshing;
    }
    refreshing = (async function () {
      do {
        again = false;
        await load();
      } while (again);
      refreshing = null;
    })();
    return refreshing;
  }

  async function load() {
    const response = await reach(url("/"));
    if (!response || !response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    // Where the keyboard is at the swap, not when the page was asked for: it may have
    // moved meanwhile.
    const focused = document.activeElement && document.activeElement.id;
    // A select the keyboard is moving through keeps its place, still unsaved: it is not
    // saved because the swap takes it away (Chromium says it lost the keyboard then).
    const moving = Array.from(document.querySelectorAll("select[data-unsaved]"), function (old) {
      delete old.dataset.unsaved;
      return [old.id, old.value];
    });
    for (const id of REGIONS) {
      const now = document.getElementById(id);
      const next = fresh.getElementById(id);
      if (now && next) now.replaceWith(document.importNode(next, true));
    }
    for (const [id, chosen] of moving) {
      const select = document.getElementById(id);
      if (select && !select.disabled && select.value !== chosen) {
        select.value = chosen;
        select.dataset.unsaved = "yes";
      }
    }
    const input = document.getElementById("spreadsheet");
    input.disabled = fresh.getElementById("spreadsheet").disabled;
    document.title = fresh.title;
    sizeBars(document);
    const data = state();
    const phase = data.phase;
    if (data.stepKey !== stepKey) {
      // A new file, a run started, or a run moved on: show the step it belongs on.
      const ended = !ACTIVE.has(phase) && phase !== "" && (ACTIVE.has(lastPhase) || startedHere);
      startedHere = false;
      stepKey = data.stepKey;
      showStep(data.opening, false);
      focusOn(landing(phase, ended));
    } else {
      showStep(step, false);
      const before = focused && document.getElementById(focused);
      if (before && !before.disabled && !before.closest("[hidden]")) before.focus();
      else if (focused) focusOn(heading(step));
    }
    lastPhase = phase;
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
    const counts = document.getElementById("live-counts");
    if (counts) {
      counts.replaceChildren();
      for (const [status, count] of data.counts) {
        const chip = document.createElement("li");
        chip.className = "chip s-" + status;
        chip.textContent = status + " " + count;
        counts.appendChild(chip);
      }
    }
  }

  // Every change of every run, also those another tab starts, and of the file and its
  // mapping, also those another tab makes, for as long as this tab is open; the browser
  // reconnects by itself when the stream breaks.
  function follow() {
    events = new EventSource(url("/events", { follow: "1" }));
    events.onerror = function () {
      // The browser tries again by itself, unless nothing answers any more.
      reach(url("/status.css"));
    };
    events.onmessage = function (message) {
      const data = JSON.parse(message.data);
      const shape = [
        data.job,
        data.phase,
        data.step,
        data.planning,
        data.stopping,
        data.uploads,
        data.changes,
      ];
      const moved = seen === null || shape.some((value, i) => value !== seen[i]);
      if (data.job !== null) showProgress(data);
      if (moved) {
        seen = shape;
        refresh();
      }
    };
  }

  async function upload(file) {
    showError("");
    const response = await reach(url("/upload", { name: file.name }), {
      method: "POST",
      // A header a form cannot send: the server takes no upload without it.
      headers: { "content-type": "application/octet-stream", "x-bulk-chats-upload": "1" },
      body: file,
    });
    if (response && (await answer(response))) await refresh();
  }

  function value(id) {
    const element = document.getElementById(id);
    return element ? element.value : "";
  }

  function checked(id) {
    const element = document.getElementById(id);
    return Boolean(element && element.checked);
  }

  // A key that moves through a closed select changes it at once, option by option: what
  // it passes over is not a choice (and a refused one would put the select back where it
  // was, so the keyboard never got past it). Such a change is saved when the user commits
  // to it, with Enter or by leaving the select; one made with the mouse or in the opened
  // list is saved at once.
  let keyed = null;

  document.addEventListener("keydown", function (event) {
    const target = event.target;
    if (!(target instanceof HTMLSelectElement) || !target.dataset.action) return;
    if (event.key === "Enter") {
      if (target.dataset.unsaved) {
        event.preventDefault();
        save(target);
      }
      return;
    }
    keyed = target;
    setTimeout(function () {
      if (keyed === target) keyed = null;
    }, 0);
  });

  document.addEventListener("focusout", function (event) {
    const target = event.target;
    if (target instanceof HTMLSelectElement && target.dataset.unsaved) save(target);
  });

  async function save(target) {
    delete target.dataset.unsaved;
    const action = target.dataset.action;
    if (action === "sheet") {
      if (await post("/sheet", { sheet: target.value })) await refresh();
    } else if (action === "mapping") {
      await post("/mapping", { field: target.dataset.field, header: target.value });
      await refresh();
    } else if (action === "column") {
      // Refused when the field is another column's: said in the alert, and the select
      // shows the mapping as it stays.
      await post("/mapping", { column: target.dataset.column, field: target.value });
      await refresh();
    } else if (action === "results") {
      await post("/options", { results: target.value });
      await refresh();
    }
  }

  document.addEventListener("change", async function (event) {
    const target = event.target;
    if (target.id === "spreadsheet" && target.files.length) {
      const file = target.files[0];
      // Emptied, so that the same file chosen again (changed since) is a change too.
      target.value = "";
      await upload(file);
    } else if (target.dataset.action) {
      if (keyed === target) target.dataset.unsaved = "yes";
      else await save(target);
    }
  });

  document.addEventListener("click", async function (event) {
    const button = event.target.closest("button");
    if (!button || button.disabled) return;
    if (button.dataset.goto) {
      showError("");
      showStep(button.dataset.goto, true);
    } else if (button.dataset.run) {
      const kind = button.dataset.run;
      const body = {
        kind: kind,
        rate: value("rate"),
        api_key: kind !== "validate" ? value("api-key") : "",
        chat_status: value("chat-status"),
        create_customers: checked("create-customers"),
        no_time_prefix: checked("no-time-prefix"),
      };
      if (await post("/run", body)) {
        startedHere = true;
        await refresh();
      }
    } else if (button.id === "export") {
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
        messages: checked("export-messages"),
        rate: value("rate"),
        api_key: value("api-key"),
      };
      if (await post("/export", body)) {
        startedHere = true;
        await refresh();
      }
    } else if (button.id === "confirm" || button.dataset.cancel === "decline") {
      // The plan is answered once: a second press (a double click) sends nothing.
      document.querySelectorAll(".confirm-actions button").forEach(function (other) {
        other.disabled = true;
      });
      // Refreshed whatever the answer: a plan still waiting gets its buttons back.
      await post("/confirm", { go_on: button.id === "confirm" });
      await refresh();
    } else if (button.dataset.cancel === "stop" || button.id === "stop") {
      if (await post("/stop")) await refresh();
    }
  });

  sizeBars(document);
  stepKey = state().stepKey;
  lastPhase = state().phase;
  showStep(state().opening, false);
  follow();
})();
