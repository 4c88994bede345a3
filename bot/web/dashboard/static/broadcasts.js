// The Broadcasts page (bot/web/dashboard/broadcasts.py): the composer's live count, cost and preview; the
// confirmation page's preview; a job's live progress. The preview is drawn by the renderer the simulator
// console uses (line-render.js). Everything works without this script too: the server confirms the count.
"use strict";
(() => {
  const $ = (selector) => document.querySelector(selector);
  const textsEl = $("#bc-texts");
  const T = textsEl ? JSON.parse(textsEl.textContent) : {};
  const say = (key, values = {}) => String(T[key] || key).replace(/\{(\w+)\}/g, (m, k) => (k in values ? values[k] : m));
  const number = (n) => Number(n).toLocaleString(document.documentElement.lang === "en" ? "en-US" : "ja-JP");

  // ---- the preview, as LINE draws it ----------------------------------------------------------------------
  function drawPreview(target, root, messages) {
    if (typeof LineRender === "undefined" || !target) return;
    const base = (root && root.dataset.public) || "";
    // the bot's own images are this server's (the dashboard runs in the bot): drawn from here; nothing external
    LineRender.use({ tap: () => {}, media: (url) => (typeof url === "string" && base && url.startsWith(base + "/") ? url.slice(base.length) : "") });
    const ctx = LineRender.context();
    if (!messages.length) {
      target.replaceChildren(LineRender.h("p", { class: "bc-empty" }, say("preview_empty")));
      return;
    }
    // as in LINE, the account's icon beside the first message of a send only
    target.replaceChildren(...messages.map((m, i) => LineRender.h("div", { class: "bc-entry" },
      LineRender.h("div", { class: i ? "bc-avatar bc-avatar-none" : "bc-avatar" }, i ? "" : "S"),
      LineRender.renderMessage(m, "preview", ctx))));
  }

  // ---- the composer: count, cost and preview as the form changes ------------------------------------------
  const form = $("#bc-compose");
  if (form) {
    const estimateBox = $("#bc-estimate");
    const preview = $("#bc-preview");
    let timer = null;
    let busy = false; // one estimate in flight per page (a segment is counted over every member)
    let again = false; // the form changed meanwhile: ask once more when the answer is in

    const syncControls = () => {
      const everyone = $("#bc-everyone");
      const bySegment = !(everyone && everyone.checked);
      $("#bc-picks").querySelectorAll("input").forEach((box) => { box.disabled = !bySegment; });
      $("#bc-combine").disabled = !bySegment;
      const later = $("#bc-later").checked;
      $("#bc-at").disabled = !later;
      $("#bc-at").required = later;
    };

    const showLines = (lines) => {
      estimateBox.replaceChildren(LineRender.h("ul", { class: "bc-lines" },
        lines.map((line) => LineRender.h("li", { class: "bc-line-" + line.kind }, line.text))));
    };

    async function estimate() {
      if (busy) { again = true; return; }
      busy = true;
      try {
        await ask();
      } finally {
        busy = false;
      }
      if (again) { again = false; estimate(); }
    }

    async function ask() {
      estimateBox.dataset.state = "counting";
      estimateBox.replaceChildren(LineRender.h("p", { class: "muted" }, say("counting")));
      let answer = null;
      let ok = false;
      try {
        const response = await fetch(form.dataset.estimate, { method: "POST", body: new URLSearchParams(new FormData(form)),
          headers: { "X-CSRF-Token": window.shokaiCsrf ? window.shokaiCsrf() : "" }, credentials: "same-origin" });
        answer = await response.json();
        ok = response.ok;
      } catch (_) { /* shown as failed below */ }
      if (again) return; // already out of date: the next answer shows
      if (!ok || !answer) {
        estimateBox.dataset.state = "error";
        const error = answer && answer.error;
        estimateBox.replaceChildren(LineRender.h("p", { class: "notice error", dataset: { code: error ? error.code : "" } },
          error ? error.text || error.message : say("failed"),
          error && error.text ? [LineRender.h("br"), LineRender.h("small", {}, error.message)] : null));
        return;
      }
      estimateBox.dataset.state = "ready";
      estimateBox.dataset.total = String(answer.total);
      showLines(answer.lines);
      drawPreview(preview, form, answer.preview);
    }

    const later = () => { clearTimeout(timer); timer = setTimeout(estimate, 350); };
    const hasBody = () => form.elements.text.value.trim() || form.elements.card.value;
    const changed = () => {
      syncControls();
      if (!hasBody()) { drawPreview(preview, form, []); }
      later();
    };
    form.addEventListener("input", changed);
    form.addEventListener("change", changed);
    syncControls();
    if (hasBody()) estimate(); // back from the confirmation to edit: the draft's count and preview at once
  }

  // ---- the confirmation's and a job's preview -----------------------------------------------------------------
  const previewData = $("#bc-preview-data");
  if (previewData && !form) drawPreview($("#bc-preview"), $("[data-public]"), JSON.parse(previewData.textContent));

  // ---- a job's progress, live (polling the job view) ---------------------------------------------------------
  const job = $("#bc-job");
  if (job && job.dataset.live === "true") {
    const show = (view) => {
      const status = $("#bc-status");
      status.textContent = say("status_" + view.status);
      status.className = "bc-status bc-status-" + view.status;
      status.dataset.status = view.status;
      $("#bc-bar").value = view.percent;
      $("#bc-count").textContent = say("progress", { done: number(view.sent + view.failed), total: number(view.total) });
      $("#bc-sent").textContent = number(view.sent);
      $("#bc-failed").textContent = number(view.failed);
      $("#bc-reason").textContent = view.reason || "—";
      $("#bc-finished").textContent = view.finished_local || "—";
      const resume = $("#bc-resume-form"), cancel = $("#bc-cancel-form");
      if (resume) resume.hidden = !view.can_resume;
      if (cancel) cancel.hidden = !view.can_cancel;
      $("#bc-paused-note").hidden = !view.can_resume;
    };
    const poll = async () => {
      let view = null;
      try {
        const response = await fetch(job.dataset.progress, { credentials: "same-origin", cache: "no-store" });
        if (response.ok) view = await response.json();
      } catch (_) { /* try again */ }
      if (view) show(view);
      if (!view || view.live) setTimeout(poll, 1000);
      else job.dataset.live = "false";
    };
    setTimeout(poll, 500);
  }
})();
