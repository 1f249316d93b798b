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

// Inbox badge: refreshed every few seconds from the API (the session cookie authenticates).
const INBOX_POLL_MS = 5000;
async function refreshInboxCount() {
  const badge = document.querySelector("[data-live-inbox]");
  if (!badge || document.hidden) return;
  try {
    const response = await fetch("/web/inbox-count", { headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const body = await response.json();
    badge.textContent = String(body.count);
    badge.hidden = body.count === 0;
  } catch (_) { /* offline: keep the last count */ }
}

window.coworker = { csrfToken, localizeTimes };

document.addEventListener("DOMContentLoaded", () => {
  localizeTimes();
  setInterval(() => localizeTimes(), 30000);
  setInterval(refreshInboxCount, INBOX_POLL_MS);
});
