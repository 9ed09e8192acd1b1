// lancesync dashboard: the little a server-rendered page cannot do alone. Every page works
// without it; this adds live progress, drag and drop, and instant user switching.
"use strict";

// A job's page: follow its progress until it ends, then show the report: the page's job part
// is fetched again and swapped in, so the messages above it stay.
function followJob(box) {
  const showFinished = async () => {
    try {
      const response = await fetch(window.location.href, { credentials: "same-origin" });
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = page.querySelector("#job-body");
      const current = document.querySelector("#job-body");
      if (fresh && current) {
        current.replaceWith(document.importNode(fresh, true));
        return;
      }
    } catch (e) {
      // Fall through to a reload.
    }
    window.location.reload();
  };
  const url = box.dataset.progressUrl;
  const bar = box.querySelector("progress");
  const label = box.querySelector("[data-progress-label]");
  const state = box.querySelector("[data-progress-state]");
  const tick = async () => {
    let job;
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`the server answered ${response.status}`);
      job = await response.json();
    } catch (e) {
      if (label) label.textContent = `Progress unavailable (${e.message}); retrying…`;
      setTimeout(tick, 2000);
      return;
    }
    if (bar) {
      if (job.total > 0) {
        bar.max = job.total;
        bar.value = job.done;
      } else {
        bar.removeAttribute("value");
      }
    }
    if (label) label.textContent = job.total > 0 ? `${job.done} of ${job.total} documents` : `${job.done} documents so far`;
    if (state) state.textContent = job.state;
    if (job.state === "succeeded" || job.state === "failed") {
      showFinished();
    } else {
      setTimeout(tick, 400);
    }
  };
  tick();
}

// The upload area: drop files on it, or pick them; either sends the form.
function dropZone(zone) {
  const form = zone.closest("form");
  const input = form.querySelector("input[type=file]");
  const submit = () => { if (input.files.length > 0) form.requestSubmit(); };
  ["dragenter", "dragover"].forEach((name) => zone.addEventListener(name, (e) => {
    e.preventDefault();
    zone.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((name) => zone.addEventListener(name, () => zone.classList.remove("over")));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    input.files = e.dataTransfer.files;
    submit();
  });
  input.addEventListener("change", submit);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-progress-url]").forEach(followJob);
  document.querySelectorAll("[data-dropzone]").forEach(dropZone);
  document.querySelectorAll("select[data-autosubmit]").forEach((select) =>
    select.addEventListener("change", () => select.form.requestSubmit()));
  // A page showing work in progress shows it again a moment later.
  const refresh = document.querySelector("[data-refresh-seconds]");
  if (refresh) setTimeout(() => window.location.reload(), Number(refresh.dataset.refreshSeconds) * 1000);
  // Scripts run: the buttons only a page without them needs can go.
  document.querySelectorAll("[data-noscript-only]").forEach((el) => el.remove());
});
