// Coworker web app: small, dependency-free enhancements. Pages work without it.
"use strict";

const csrfToken = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

// Times: <time datetime="ISO"> shows the reader's local time and "5 min ago".
function relative(date) {
  const seconds = Math.round((Date.now() - date.getTime()) / 1000);
  const abs = Math.abs(seconds);
  const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  if (abs < 60) return rtf.format(-seconds, "second");
  if (abs < 3600) return rtf.format(-Math.round(seconds / 60), "minute");
  if (abs < 86400) return rtf.format(-Math.round(seconds / 3600), "hour");
  return rtf.format(-Math.round(seconds / 86400), "day");
}
function localizeTimes(root) {
  for (const el of (root || document).querySelectorAll("time[datetime]")) {
    const date = new Date(el.getAttribute("datetime"));
    if (isNaN(date)) continue;
    el.title = date.toLocaleString();
    el.textContent = el.dataset.format === "absolute" ? date.toLocaleString() : relative(date);
  }
}

// Forms with data-confirm ask first.
document.addEventListener("submit", (event) => {
  const form = event.target;
  const message = form.dataset.confirm || event.submitter?.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});

// Inbox badge: pushed by the server (an event stream from /web/inbox-count, which the
// session cookie authenticates); where streams are unavailable, asked for every few seconds.
const INBOX_POLL_MS = 5000;
function showInboxCount(count) {
  const badge = document.querySelector("[data-live-inbox]");
  if (!badge) return;
  badge.textContent = String(count);
  badge.hidden = count === 0;
}
async function refreshInboxCount() {
  if (!document.querySelector("[data-live-inbox]") || document.hidden) return;
  try {
    const response = await fetch("/web/inbox-count", { headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const body = await response.json();
    showInboxCount(body.count);
  } catch (_) { /* offline: keep the last count */ }
}
function followInboxCount() {
  if (!document.querySelector("[data-live-inbox]")) return;
  if (!window.EventSource) {
    setInterval(refreshInboxCount, INBOX_POLL_MS);
    return;
  }
  // EventSource reconnects by itself (the server ends each stream after a while).
  const source = new EventSource("/web/inbox-count");
  source.addEventListener("count", (event) => {
    try { showInboxCount(JSON.parse(event.data).count); } catch (_) { /* keep the last count */ }
  });
}

window.coworker = { csrfToken, localizeTimes };

document.addEventListener("DOMContentLoaded", () => {
  localizeTimes();
  setInterval(() => localizeTimes(), 30000);
  followInboxCount();
});

// ---- Task detail: live timeline (web/tasks.rs) ----
// The server renders every timeline entry. Whenever the task's event stream (SSE from
// /api/v1/tasks/{id}/events) says something happened, the page asks the server for the
// entries after the last one it shows (GET /tasks/{id}/live?after=N returns the same markup
// as the page, plus status, cost, tokens and, when they may have changed, the "needs you"
// section and the outcome: plan, result, files). While the stream is not connected it polls instead. When the task ends, the page
// re-renders its main section once (fetched, not reloaded) so the result and files appear.
const LIVE_POLL_MS = 3000;
const LIVE_DEBOUNCE_MS = 150;

// Replaces <main> with the server's current rendering of this page, keeping scroll position
// and the script's state (no navigation).
async function swapMain() {
  try {
    const response = await fetch(window.location.href, { headers: { Accept: "text/html" } });
    if (!response.ok) return;
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = page.querySelector("main");
    const main = document.querySelector("main");
    if (fresh && main) {
      main.innerHTML = fresh.innerHTML;
      localizeTimes(main);
      refreshInboxCount();
    }
  } catch (_) { /* offline: the next visit shows the result */ }
}

function liveTask() {
  const timeline = document.getElementById("timeline");
  if (!timeline || !timeline.dataset.taskId || timeline.dataset.terminal === "true") return;
  const id = encodeURIComponent(timeline.dataset.taskId);
  let lastSeq = Number(timeline.dataset.lastSeq || 0);
  let busy = false, again = false, done = false, timer = null, source = null;

  // Someone typing an answer or note keeps their form: the section is replaced later.
  const typing = (box) => [...box.querySelectorAll("textarea")]
    .some((t) => t.value.trim() !== "" || t === document.activeElement);

  function apply(body) {
    if (body.html && body.last_seq > lastSeq) {
      const template = document.createElement("template");
      template.innerHTML = body.html;
      for (const item of template.content.querySelectorAll("li.event")) {
        if (Number(item.dataset.seq) <= lastSeq) continue;
        item.classList.add("fresh");
        timeline.appendChild(item);
      }
      localizeTimes(timeline);
      const empty = document.getElementById("timeline-empty");
      if (empty) empty.hidden = true;
    }
    lastSeq = Math.max(lastSeq, Number(body.last_seq || 0));
    timeline.dataset.lastSeq = String(lastSeq);
    const status = document.getElementById("task-status");
    if (status && body.status) {
      status.textContent = body.status;
      status.className = "status " + body.status;
    }
    const cost = document.getElementById("task-cost");
    if (cost && body.cost) cost.textContent = body.cost;
    const tokens = document.getElementById("task-tokens");
    if (tokens && body.tokens) tokens.textContent = body.tokens;
    const box = document.getElementById("task-attention");
    if (box && typeof body.attention_html === "string" && body.attention_key !== box.dataset.key && !typing(box)) {
      box.innerHTML = body.attention_html;
      box.dataset.key = body.attention_key;
      localizeTimes(box);
      refreshInboxCount();
    }
    const outcome = document.getElementById("task-outcome");
    if (outcome && typeof body.outcome_html === "string") outcome.innerHTML = body.outcome_html;
  }

  async function catchUp() {
    if (done) return;
    if (busy) { again = true; return; }
    busy = true;
    try {
      const response = await fetch(`/tasks/${id}/live?after=${lastSeq}`, { headers: { Accept: "application/json" } });
      if (response.ok) {
        const body = await response.json();
        apply(body);
        if (body.terminal) {
          done = true;
          if (source) source.close();
          swapMain();
        }
      }
    } catch (_) { /* offline: the next event or poll tries again */ }
    finally {
      busy = false;
      if (again && !done) { again = false; catchUp(); }
    }
  }

  // Bursts of events (a model turn and its tool calls) make one request.
  const soon = () => {
    if (timer) return;
    timer = setTimeout(() => { timer = null; catchUp(); }, LIVE_DEBOUNCE_MS);
  };

  if ("EventSource" in window) {
    source = new EventSource(`/api/v1/tasks/${id}/events?after=${lastSeq}`);
    source.onopen = soon; // anything between the page's render and the connection
    source.onmessage = soon;
    for (const kind of (timeline.dataset.kinds || "").split(" ").filter(Boolean)) source.addEventListener(kind, soon);
    source.addEventListener("status", soon);
  }
  setInterval(() => {
    if (!document.hidden && (!source || source.readyState !== EventSource.OPEN)) catchUp();
  }, LIVE_POLL_MS);
}

document.addEventListener("DOMContentLoaded", liveTask);

// ---- Task detail: writing in the conversation without leaving the page ----
// The message box (form[data-live-send]) posts with fetch; the server answers JSON, and what
// was written and the coworker's reply arrive through the live timeline above. Without the
// script the form posts normally and the page comes back with a flash.
document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.matches("form[data-live-send]") || event.defaultPrevented) return;
  event.preventDefault();
  const status = form.querySelector('[role="status"]');
  const box = form.querySelector("textarea");
  const button = form.querySelector('button[type="submit"]');
  if (button) button.disabled = true;
  try {
    const response = await fetch(form.action, {
      method: "POST",
      headers: { Accept: "application/json", "X-CSRF-Token": csrfToken() },
      body: new URLSearchParams(new FormData(form)),
    });
    const body = await response.json().catch(() => ({}));
    if (response.ok) {
      if (box) box.value = "";
      if (status) status.textContent = body.accepted === "answer" ? "Sent as your answer." : "Sent.";
    } else if (status) {
      status.textContent = body.error ? `${body.error.message}. ${body.error.hint || ""}` : "Not sent; try again.";
    }
  } catch (_) {
    if (status) status.textContent = "Not sent (offline?); try again.";
  } finally {
    if (button) button.disabled = false;
  }
});

// ---- Admin pages: copy buttons (<button data-copy="#id">) for values shown once ----
document.addEventListener("click", async (event) => {
  const button = event.target.closest?.("[data-copy]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  if (!source) return;
  const text = "value" in source ? source.value : source.textContent;
  try {
    await navigator.clipboard.writeText(text);
  } catch (_) {
    // No clipboard API (plain http on another host): select it for Ctrl-C.
    source.select?.();
  }
  const label = button.textContent;
  button.textContent = "Copied";
  setTimeout(() => { button.textContent = label; }, 2000);
});

// ---- Schedules & triggers (web/schedules.rs) ----
// The create form previews its cron as the person types: the words and the next fire times,
// or the error naming the bad field or timezone (GET /web/schedules/preview).
document.addEventListener("DOMContentLoaded", () => {
  const cron = document.getElementById("schedule-cron");
  const tz = document.getElementById("schedule-tz");
  const out = document.getElementById("schedule-preview");
  if (!cron || !out) return;
  let timer = null;
  const update = async () => {
    const query = new URLSearchParams({ cron: cron.value, timezone: tz ? tz.value : "" });
    try {
      const response = await fetch(`/web/schedules/preview?${query}`, { headers: { Accept: "application/json" } });
      const body = await response.json();
      out.textContent = body.error ? body.error : `${body.words} — next: ${body.next_fire_times.join(", ")}`;
      out.classList.toggle("error", Boolean(body.error));
    } catch (_) {
      out.textContent = "";
    }
  };
  const schedule = () => { clearTimeout(timer); timer = setTimeout(update, 250); };
  cron.addEventListener("input", schedule);
  if (tz) tz.addEventListener("input", schedule);
  update();
});

// ---- Task detail: the tree of subtasks (web/subtasks.rs, issue 15) ----
// Subtasks change without the parent's journal moving, so while any of them is unfinished
// the page re-fetches the server's rendering of the tree every few seconds. A person choosing
// a coworker to hand the task to keeps the form: the tree waits until the select is left.
const TREE_POLL_MS = 2000;

function liveTree() {
  const box = document.getElementById("task-tree");
  if (!box || !box.dataset.src) return;
  const open = () => box.querySelector("[data-open='true']") !== null;
  async function refresh() {
    if (!open()) return;
    const focused = box.contains(document.activeElement);
    if (!document.hidden && !focused) {
      try {
        const response = await fetch(box.dataset.src, { headers: { Accept: "text/html" } });
        if (response.ok) box.innerHTML = await response.text();
      } catch (_) { /* offline: try again on the next tick */ }
    }
    if (open()) setTimeout(refresh, TREE_POLL_MS);
  }
  setTimeout(refresh, TREE_POLL_MS);
}

document.addEventListener("DOMContentLoaded", liveTree);
