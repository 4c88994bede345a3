// Shokai LINE simulator console: renders what the bot sends each virtual customer as LINE would,
// and turns taps into webhooks through the console's /api. Every string that comes from the bot
// reaches the page through textContent or a validated attribute, never as markup.
"use strict";

const S = {
  config: { public_base_url: "", bot_url: "", basic_id: "" },
  customers: new Map(), // uid -> {summary fields, transcript, lastSeq, el}
  logCount: 0,
  browserUid: null,
  browserUrl: null,
};

// ---- small helpers ------------------------------------------------------------------------
const $ = (selector, root = document) => root.querySelector(selector);

const { h, renderMessage } = LineRender; // the shared renderer (bot/web/dashboard/static/line-render.js)

const bi = (ja, en) => [ja, " ", h("small", {}, en)]; // Japanese label with English in small text

function isHttp(url) {
  return typeof url === "string" && /^https?:\/\//i.test(url);
}

function under(url, base) {
  return typeof url === "string" && !!base && (url === base || url.startsWith(base + "/") || url.startsWith(base + "?"));
}

/** The console's LIFF app's URL (https://liff.line.me/{LIFF ID}…): LINE opens it in its LIFF browser. */
function isLiff(url) {
  const id = S.config.liff_id;
  return typeof url === "string" && !!id && (url === `https://liff.line.me/${id}`
    || url.startsWith(`https://liff.line.me/${id}?`) || url.startsWith(`https://liff.line.me/${id}/`));
}

/** A link of the bot's own (an invite page, a QR image, its LIFF app): opened in the phone browser. */
function isPublic(url) {
  return typeof url === "string" && (under(url, S.config.public_base_url) || under(url, S.config.bot_url) || isLiff(url));
}

/** A URL the console page can load: the bot's resources through the console's /bot proxy. */
function mediaUrl(url) {
  for (const base of [S.config.public_base_url, S.config.bot_url]) {
    if (under(url, base)) return "/bot" + (url.slice(base.length) || "/");
  }
  return isHttp(url) ? url : "";
}

function shortUrl(url) {
  for (const base of [S.config.public_base_url, S.config.bot_url]) {
    if (under(url, base)) return url.slice(base.length) || "/";
  }
  return url;
}

function hhmm(ms) {
  const d = new Date(ms);
  return String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
}

function toast(text, kind = "info") {
  const el = h("div", { class: "toast " + kind }, text);
  $("#toasts").append(el);
  setTimeout(() => el.remove(), 4500);
}

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  let response;
  try {
    response = await fetch(path, options);
  } catch (err) {
    toast("コンソールに接続できません console unreachable: " + err, "error");
    return { ok: false, status: 0, data: null };
  }
  let data = null;
  try { data = await response.json(); } catch (_) { /* not JSON */ }
  if (!response.ok) toast((data && data.error) || `HTTP ${response.status}`, "error");
  return { ok: response.ok, status: response.status, data };
}

const customerPath = (uid, what) => `/api/customers/${encodeURIComponent(uid)}/${what}`;

// ---- customers ------------------------------------------------------------------------------
const STATE_LABEL = {
  new: ["未追加", "not a friend"],
  friend: ["友だち", "friend"],
  blocked: ["ブロック中", "blocked"],
};

function buildPhone(c) {
  const el = {};
  el.name = h("span", { class: "name" }, c.name);
  el.state = h("span", { class: "state" });
  el.follow = h("button", { type: "button", class: "act-follow", onclick: () => act(c.uid, "follow") },
    bi("友だち追加", "follow"));
  el.block = h("button", { type: "button", class: "act-block", onclick: () => act(c.uid, "block") },
    bi("ブロック", "block"));
  el.unblock = h("button", { type: "button", class: "act-unblock", onclick: () => act(c.uid, "unblock") },
    bi("ブロック解除", "unblock"));
  el.amount = h("input", { type: "number", class: "amount", min: "1", step: "1", value: "3000", "aria-label": "amount (yen)" });
  el.purchase = h("button", { type: "button", class: "act-purchase", onclick: () => purchase(c.uid) },
    bi("購入を報告", "report purchase"));
  // the shop's own customer id (account link): filled, the purchase is reported by it instead of the LINE user
  el.customerId = h("input", { type: "text", class: "customer-id", maxlength: "128", placeholder: "会員ID customer id",
    "aria-label": "shop customer id (optional)" });
  // an order at the Shopify store (orders/paid from the store's stand-in): by the customer id above and/or a coupon
  el.coupon = h("input", { type: "text", class: "coupon", maxlength: "100", placeholder: "クーポン coupon",
    "aria-label": "discount code on the Shopify order (optional)" });
  el.shopify = h("button", { type: "button", class: "act-shopify", onclick: () => shopifyOrder(c.uid) },
    bi("Shopify注文", "Shopify order"));
  el.chat = h("div", { class: "chat" });
  el.typing = h("div", { class: "typing", hidden: true }, h("span", {}, "●"), h("span", {}, "●"), h("span", {}, "●"));
  el.quick = h("div", { class: "quick-replies" });
  el.draft = h("input", { class: "draft", type: "text", placeholder: "メッセージを入力 (message)", "aria-label": "message" });
  el.send = h("button", { type: "submit", class: "send" }, "送信");
  // the rich menu under the chat, opened and closed by its chat bar, as in LINE
  el.menu = h("div", { class: "richmenu", hidden: true });
  el.menuBar = h("button", { type: "button", class: "richmenu-bar", hidden: true, "aria-expanded": "false",
    onclick: () => { c.menuOpen = !c.menuOpen; showMenuState(c); } });
  el.root = h("section", { class: "phone", dataset: { uid: c.uid, name: c.name } },
    h("header", { class: "phone-head" },
      h("div", { class: "who" }, el.name, h("span", { class: "lang" }, c.language), el.state,
        h("span", { class: "uid", title: c.uid }, c.uid.slice(0, 9) + "…")),
      h("div", { class: "controls" }, el.follow, el.block, el.unblock),
      h("div", { class: "controls" }, h("label", { class: "yen" }, "¥", el.amount), el.customerId, el.purchase),
      h("div", { class: "controls" }, el.coupon, el.shopify)),
    el.chat,
    el.quick,
    h("form", { class: "composer", onsubmit: (ev) => { ev.preventDefault(); send(c.uid); } }, el.draft, el.send),
    el.menuBar,
    el.menu);
  el.chat.append(el.typing);
  return el;
}

/** The rich menu open or closed, and its bar saying which way a tap goes. */
function showMenuState(c) {
  c.el.menu.hidden = !c.menuOpen;
  c.el.menuBar.setAttribute("aria-expanded", String(!!c.menuOpen));
  c.el.menuBar.replaceChildren((c.menuText || "") + (c.menuOpen ? " ▾" : " ▴"));
}

/** Ask which rich menu the customer sees now (the default, or one linked to them) and draw it. */
async function refreshRichMenu(c) {
  let data = null;
  try {
    const response = await fetch(customerPath(c.uid, "richmenu"));
    if (response.ok) data = (await response.json()).menu;
  } catch (_) { return; }
  const shown = c.el.menu.dataset.id || "";
  if ((data ? data.id : "") === shown) return;
  c.el.menu.dataset.id = data ? data.id : "";
  c.el.menuBar.hidden = !data;
  if (!data) { c.el.menu.hidden = true; c.el.menu.replaceChildren(); return; }
  if (c.menuOpen === undefined) c.menuOpen = false; // closed until its bar is tapped, as LINE shows it
  c.menuText = data.chatBarText;
  showMenuState(c);
  const { width, height } = data.size;
  c.el.menu.style.aspectRatio = `${width} / ${height}`;
  c.el.menu.replaceChildren(h("img", { src: data.image, alt: "" }), ...data.areas.map((area, index) => {
    const b = area.bounds;
    const spot = h("button", { type: "button", class: "richmenu-area", title: area.label, "aria-label": area.label,
      onclick: async () => { await api(customerPath(c.uid, `richmenu/${index}`), {}); refreshRichMenu(c); } });
    Object.assign(spot.style, { left: `${(100 * b.x) / width}%`, top: `${(100 * b.y) / height}%`,
      width: `${(100 * b.width) / width}%`, height: `${(100 * b.height) / height}%` });
    return spot;
  }));
}

function upsertCustomer(given) {
  const { transcript: _ignored, ...summary } = given; // entries arrive through appendEntry only
  let c = S.customers.get(summary.uid);
  if (!c) {
    c = { ...summary, transcript: [], lastSeq: 0 };
    c.el = buildPhone(c);
    S.customers.set(c.uid, c);
    $("#phones").append(c.el.root);
    $("#empty-hint").hidden = true;
  }
  Object.assign(c, summary);
  const [ja, en] = STATE_LABEL[c.state] || [c.state, ""];
  c.el.state.replaceChildren(...bi(ja, en));
  c.el.root.dataset.state = c.state;
  c.el.follow.disabled = c.state !== "new";
  c.el.block.disabled = c.state !== "friend";
  c.el.unblock.disabled = c.state !== "blocked";
  c.el.send.disabled = c.state === "blocked";
  c.el.draft.placeholder = c.state === "blocked" ? "ブロック中 (blocked)" : "メッセージを入力 (message)";
  refreshRichMenu(c);
  return c;
}

async function act(uid, what) {
  const { data } = await api(customerPath(uid, what), {});
  if (data) handleEffect(uid, data);
}

async function send(uid) {
  const c = S.customers.get(uid);
  const text = c.el.draft.value;
  if (!text.trim()) return;
  c.el.draft.value = "";
  const { ok } = await api(customerPath(uid, "text"), { text });
  if (!ok) c.el.draft.value = text; // keep what the customer typed
}

async function purchase(uid) {
  const c = S.customers.get(uid);
  const amount = parseInt(c.el.amount.value, 10);
  if (!Number.isFinite(amount) || amount < 1) { toast("金額を入力してください enter an amount", "error"); return; }
  const customerId = c.el.customerId.value.trim();
  await api(customerPath(uid, "purchase"), customerId ? { amount, customer_id: customerId } : { amount });
}

async function shopifyOrder(uid) {
  const c = S.customers.get(uid);
  const amount = parseInt(c.el.amount.value, 10);
  if (!Number.isFinite(amount) || amount < 1) { toast("金額を入力してください enter an amount", "error"); return; }
  const customerId = c.el.customerId.value.trim(), coupon = c.el.coupon.value.trim();
  await api(customerPath(uid, "shopify-order"), { amount, ...(customerId && { customer_id: customerId }),
    ...(coupon && { coupon }) });
}

function setDraft(uid, text) {
  const c = S.customers.get(uid);
  if (!c) return;
  c.el.draft.value = text;
  c.el.draft.focus();
  c.el.draft.classList.remove("flash");
  void c.el.draft.offsetWidth; // restart the highlight animation
  c.el.draft.classList.add("flash");
}

// ---- taps -----------------------------------------------------------------------------------
async function tap(uid, action) {
  if (!action || typeof action !== "object") return;
  if (action.type === "datetimepicker") {  // LINE shows a picker; the console asks for the value
    const chosen = window.prompt(action.label || "date", action.initial || "");
    if (chosen === null) return;
    action = { ...action, chosen };
  }
  const { data } = await api(customerPath(uid, "tap"), { action });
  if (data) handleEffect(uid, data);
}

const tapUri = (uid, uri) => tap(uid, { type: "uri", uri });

async function openAs(uid, url) {
  const { data } = await api(customerPath(uid, "open"), { url });
  if (data) handleEffect(uid, data);
}

async function scanAs(uid, imageUrl, links) {
  const { data } = await api(customerPath(uid, "scan"), { image_url: imageUrl, links });
  if (!data) return;
  if (data.scanned) {
    toast(`QR → ${shortUrl(data.scanned.url)} (${data.scanned.how === "decoded" ? "読み取り decoded" : "リンクと対応 paired with link"})`);
  }
  handleEffect(uid, data);
}

/** Carry out what the console says the phone does after a tap. */
function handleEffect(uid, res) {
  const c = S.customers.get(uid);
  const name = c ? c.name : uid;
  if (res.warning) toast("⚠ " + res.warning, "error");
  switch (res.effect) {
    case "prefill":
      setDraft(uid, res.text);
      closeBrowser(); // LINE switches from the browser to the chat with the text in the box
      toast(`${name}: 入力欄に入りました — 送信してください (pre-filled; tap send)`);
      break;
    case "followed":
      toast(res.unblocked ? `${name} がブロック解除しました (unblocked)` : `${name} が友だち追加しました (followed)`);
      break;
    case "already_friend":
      toast(`${name} はすでに友だちです (already a friend)`);
      break;
    case "blocked":
      toast(`${name} がブロックしました (blocked)`);
      break;
    case "share":
      showShare(uid, res.text);
      break;
    case "browser":
      showBrowser(uid, res);
      break;
    case "liff":
      showLiff(uid, res);
      break;
    case "account_link":
      closeBrowser(); // LINE's dialog hands back to the chat, where the bot says how it went
      toast(`${name}: アカウント連携 account link — ${res.result}`, res.result === "ok" ? undefined : "error");
      break;
    case "external":
      if (isHttp(res.url)) window.open(res.url, "_blank", "noopener");
      break;
    case "clipboard":
      if (navigator.clipboard) navigator.clipboard.writeText(String(res.text)).catch(() => {});
      toast("コピーしました copied: " + res.text);
      break;
    case "unsupported":
      toast(res.message || "unsupported", "error");
      break;
    default:
      break;
  }
}

// ---- the chooser (which customer opens / scans this) -------------------------------------------
function choose(anchor, title, onPick) {
  const box = $("#chooser");
  $("#chooser-title").replaceChildren(...[title].flat()); // a label built by bi() is a list of nodes
  const items = [...S.customers.values()].map((c) =>
    h("button", { type: "button", dataset: { uid: c.uid, name: c.name },
      onclick: (ev) => { ev.stopPropagation(); box.hidden = true; onPick(c.uid); } }, c.name));
  $("#chooser-items").replaceChildren(...items);
  const r = anchor.getBoundingClientRect();
  box.style.left = Math.min(r.left + window.scrollX, window.scrollX + document.documentElement.clientWidth - 200) + "px";
  box.style.top = (r.bottom + window.scrollY + 4) + "px";
  box.hidden = false;
}

document.addEventListener("click", (ev) => {
  const box = $("#chooser");
  if (!box.hidden && !box.contains(ev.target) && !ev.target.closest(".open-as, .scan")) box.hidden = true;
});

function openAsControl(url) {
  return h("button", { type: "button", class: "open-as", dataset: { link: url }, title: "open as another customer",
    onclick: (ev) => { ev.stopPropagation(); choose(ev.currentTarget, bi("誰として開く？", "open as…"), (uid) => openAs(uid, url)); } },
  "開く… ", h("small", {}, "open as"));
}

// ---- the phone browser and the share sheet -------------------------------------------------------
function showBrowser(uid, res) {
  const c = S.customers.get(uid);
  const frame = $("#browser-frame");
  frame.setAttribute("sandbox", "allow-scripts"); // the bot's pages as documents of no origin
  frame.removeAttribute("src");
  $("#browser").dataset.kind = "browser";
  S.browserUid = uid;
  S.browserUrl = res.url;
  $("#browser").dataset.uid = uid;
  $("#browser-who").replaceChildren(`📱 ${c ? c.name : uid} のブラウザ`);
  $("#browser-url").replaceChildren(shortUrl(res.url) + (res.status && res.status !== 200 ? `  (HTTP ${res.status})` : ""));
  $("#browser-url").title = res.url;
  $("#browser-frame").srcdoc = res.html; // sandboxed (scripts only, opaque origin): the bot's page as is
  $("#browser").hidden = false;
}

/** A LIFF URL: LINE's LIFF browser. The page is served by the console under /phone/{uid}/ (so it runs with
 *  this customer's LINE: the stand-in SDK at /static/liff-sdk.js) and may call the bot and the console. */
function showLiff(uid, res) {
  const c = S.customers.get(uid);
  const frame = $("#browser-frame");
  S.browserUid = uid;
  S.browserUrl = res.url;
  $("#browser").dataset.uid = uid;
  $("#browser").dataset.kind = "liff";
  $("#browser-who").replaceChildren(`📱 ${c ? c.name : uid} の LIFF`);
  $("#browser-url").replaceChildren(res.url);
  $("#browser-url").title = res.url;
  frame.removeAttribute("srcdoc");
  // the console's own origin: the page's fetches reach the bot through /phone/, the SDK the console's /api
  frame.setAttribute("sandbox", "allow-scripts allow-same-origin");
  frame.src = res.frame;
  $("#browser").hidden = false;
}

function closeBrowser() {
  const frame = $("#browser-frame");
  $("#browser").hidden = true;
  frame.removeAttribute("src");
  frame.setAttribute("sandbox", "allow-scripts");
  frame.srcdoc = "";
  S.browserUid = null;
}

// a tap inside the phone browser: the injected script hands us the link
window.addEventListener("message", (ev) => {
  if (ev.source !== $("#browser-frame").contentWindow) return;
  if (ev.data && ev.data.shokaiLiffClose) { closeBrowser(); return; } // liff.closeWindow()
  const href = ev.data && ev.data.shokaiTap;
  if (typeof href === "string" && S.browserUid) tapUri(S.browserUid, href);
});

function showShare(fromUid, text) {
  const from = S.customers.get(fromUid);
  $("#share-text").textContent = text;
  const targets = [...S.customers.values()].filter((c) => c.uid !== fromUid).map((c) =>
    h("button", { type: "button", dataset: { uid: c.uid, name: c.name }, onclick: async () => {
      $("#share").hidden = true;
      const { ok } = await api(customerPath(fromUid, "share"), { to: c.uid, text });
      if (ok) toast(`${from ? from.name : ""} → ${c.name} に送りました (shared)`);
    } }, `${c.name} に送る`));
  if (!targets.length) targets.push(h("p", {}, ...bi("送れる相手がいません。", "add another customer first.")));
  $("#share-targets").replaceChildren(...targets);
  $("#share").hidden = false;
}

// ---- rendering: text with links -----------------------------------------------------------------
const URL_RE = /https?:\/\/[^\s<>"'「」（）、。]+/g;

/** Text with clickable links; the bot's own links also get an "open as…" control. */
function linkified(uid, text, ctx) {
  const out = [];
  let last = 0;
  for (const match of String(text).matchAll(URL_RE)) {
    const url = match[0].replace(/[.,!?)]+$/, "");
    out.push(text.slice(last, match.index));
    out.push(h("a", { class: "link", href: url, dataset: { link: url }, target: "_blank", rel: "noopener",
      onclick: (ev) => { ev.preventDefault(); tapUri(uid, url); } }, url));
    if (isPublic(url)) {
      out.push(openAsControl(url));
      if (ctx) ctx.inline.add(url);
    }
    last = match.index + url.length;
  }
  out.push(String(text).slice(last));
  return out;
}

// ---- rendering: LINE's messages are drawn by the shared renderer; taps, links and media are the console's
LineRender.use({ tap, text: linkified, media: mediaUrl });

// ---- rendering: one entry ------------------------------------------------------------------------------
/** Every uri an entry's actions point to (buttons, quick replies, default actions). */
function actionUris(node, found = []) {
  if (Array.isArray(node)) node.forEach((n) => actionUris(n, found));
  else if (node && typeof node === "object") {
    if (node.type === "uri" && typeof node.uri === "string") found.push(node.uri);
    Object.values(node).forEach((v) => actionUris(v, found));
  }
  return found;
}

function scanControl(imageUrl, links) {
  return h("button", { type: "button", class: "scan", dataset: { image: imageUrl },
    onclick: (ev) => { ev.stopPropagation(); choose(ev.currentTarget, bi("誰が読み取る？", "scan as…"), (who) => scanAs(who, imageUrl, links)); } },
  "📷 QRを読み取る ", h("small", {}, "scan"));
}

function renderEntry(entry, uid) {
  const time = h("span", { class: "time" }, hhmm(entry.at));
  switch (entry.kind) {
    case "bot": {
      const ctx = { inline: new Set(), images: [] };
      const messages = (entry.messages || []).map((m) => renderMessage(m, uid, ctx));
      const links = [...new Set([...actionUris(entry.messages), ...ctx.inline])].filter(isPublic);
      // links only reachable through a button still get an "open as…" control
      const extra = links.filter((u) => !ctx.inline.has(u)).map((u) =>
        h("div", { class: "entry-link" }, "🔗 ", h("span", { class: "path", title: u }, shortUrl(u)), " ", openAsControl(u)));
      // images of the bot's own that may be a QR code (image messages, Flex images), once each
      const scans = [...new Set(ctx.images)].filter(isPublic).map((u) => scanControl(u, links));
      return h("div", { class: "entry bot", dataset: { seq: entry.seq, kind: "bot", endpoint: entry.endpoint } },
        h("div", { class: "avatar" }, "S"),
        h("div", { class: "stack" }, messages, extra, scans,
          h("div", { class: "meta" }, time, h("span", { class: "via" }, entry.endpoint))));
    }
    case "me":
      return h("div", { class: "entry me", dataset: { seq: entry.seq, kind: "me" } },
        h("div", { class: "meta" }, h("span", { class: "read" }, "既読"), time),
        h("div", { class: "bubble me" }, entry.text));
    case "postback":
      if (entry.displayText) {
        return h("div", { class: "entry me", dataset: { seq: entry.seq, kind: "postback" } },
          h("div", { class: "meta" }, time), h("div", { class: "bubble me", title: "postback: " + entry.data }, entry.displayText));
      }
      return h("div", { class: "entry system", dataset: { seq: entry.seq, kind: "postback" } },
        h("span", { class: "pill" }, "postback: ", h("code", {}, entry.data)));
    case "note": // something another customer shared into this chat
      return h("div", { class: "entry bot note", dataset: { seq: entry.seq, kind: "note" } },
        h("div", { class: "avatar friend" }, (entry.sender || "?").slice(0, 1)),
        h("div", { class: "stack" },
          h("div", { class: "sender" }, `${entry.sender} さんから `, h("small", {}, "shared with you")),
          h("div", { class: "bubble friend" }, ...linkified(uid, entry.text || "", null)),
          h("div", { class: "meta" }, time)));
    case "shared": { // messages another customer sent with liff.shareTargetPicker (a Flex invite card…)
      const ctx = { inline: new Set(), images: [] };
      return h("div", { class: "entry bot note shared", dataset: { seq: entry.seq, kind: "shared" } },
        h("div", { class: "avatar friend" }, (entry.sender || "?").slice(0, 1)),
        h("div", { class: "stack" },
          h("div", { class: "sender" }, `${entry.sender} さんから `, h("small", {}, "shared with you")),
          (entry.messages || []).map((m) => renderMessage(m, uid, ctx)),
          h("div", { class: "meta" }, time)));
    }
    case "system":
    default:
      return h("div", { class: "entry system", dataset: { seq: entry.seq, kind: entry.kind } },
        h("span", { class: "pill" }, entry.text || ""),
        entry.json !== undefined ? h("pre", { class: "json" }, JSON.stringify(entry.json, null, 2)) : null);
  }
}

/** LINE shows the quick reply of the last message, until the customer sends something. */
function updateQuickReplies(c) {
  const last = [...c.transcript].reverse().find((e) => e.kind !== "system");
  const messages = last && last.kind === "bot" ? last.messages || [] : [];
  const quick = messages.length ? messages[messages.length - 1].quickReply : null;
  const items = (quick && quick.items) || [];
  c.el.quick.replaceChildren(...items.map((item) => {
    const action = item.action || {};
    const chip = h("button", { type: "button", class: "chip", dataset: { type: action.type || "" } });
    const icon = mediaUrl(item.imageUrl);
    if (icon) chip.append(h("img", { src: icon, alt: "" }));
    chip.append(action.label || action.text || "");
    if (action.type === "uri") chip.dataset.uri = action.uri;
    chip.addEventListener("click", () => tap(c.uid, action));
    return chip;
  }));
}

function appendEntry(c, entry) {
  if (entry.seq <= c.lastSeq) return; // already shown (the snapshot raced the feed)
  c.lastSeq = entry.seq;
  c.transcript.push(entry);
  if (entry.kind === "bot") c.el.typing.hidden = true;
  c.el.chat.insertBefore(renderEntry(entry, c.uid), c.el.typing);
  updateQuickReplies(c);
  if (entry.kind === "bot") refreshRichMenu(c); // an answer may come with a menu linked or unlinked
  c.el.chat.scrollTop = c.el.chat.scrollHeight;
}

// ---- the log pane ----------------------------------------------------------------------------------
function appendLog(item) {
  S.logCount += 1;
  $("#log-count").textContent = String(S.logCount);
  $("#log-count").classList.add("hot");
  $("#log-items").append(h("li", { class: "log-" + item.kind },
    h("span", { class: "time" }, hhmm(item.at)), h("span", { class: "kind" }, item.kind), item.text));
}

// ---- the live feed -----------------------------------------------------------------------------------
function applySnapshot(snapshot) {
  S.config = snapshot.config;
  $("#dashboard-link").href = S.config.public_base_url + "/admin/"; // the bot's staff dashboard, in a new tab
  const drafts = new Map([...S.customers.values()].map((c) => [c.uid, c.el.draft.value]));
  for (const c of S.customers.values()) c.el.root.remove();
  S.customers.clear();
  for (const summary of snapshot.customers) {
    const c = upsertCustomer(summary);
    c.el.draft.value = drafts.get(c.uid) || "";
    for (const entry of summary.transcript) appendEntry(c, entry);
  }
  $("#empty-hint").hidden = S.customers.size > 0;
  S.logCount = 0;
  $("#log-items").replaceChildren();
  snapshot.log.forEach(appendLog);
}

function connect() {
  const source = new EventSource("/api/events");
  const status = $("#connection");
  source.onopen = () => { status.replaceChildren(...bi("接続済み", "live")); status.className = "connection live"; };
  source.onerror = () => { status.replaceChildren(...bi("再接続中…", "reconnecting")); status.className = "connection down"; };
  source.onmessage = (ev) => {
    const event = JSON.parse(ev.data);
    if (event.type === "snapshot") applySnapshot(event);
    else if (event.type === "customer") upsertCustomer(event.customer);
    else if (event.type === "entry") {
      const c = S.customers.get(event.uid);
      if (c) appendEntry(c, event.entry);
    } else if (event.type === "log") appendLog(event.item);
    else if (event.type === "typing") {
      const c = S.customers.get(event.uid);
      if (!c) return;
      c.el.typing.hidden = false;
      c.el.chat.scrollTop = c.el.chat.scrollHeight;
      clearTimeout(c.typingTimer);
      c.typingTimer = setTimeout(() => { c.el.typing.hidden = true; }, Math.min(Number(event.seconds) || 5, 60) * 1000);
    }
  };
}

// ---- wiring -------------------------------------------------------------------------------------------
$("#add-customer").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const name = $("#new-name").value.trim();
  if (!name) return;
  const { ok, data } = await api("/api/customers", { name, language: $("#new-language").value });
  if (ok) { upsertCustomer(data); $("#new-name").value = ""; }
});
$("#browser-close").addEventListener("click", closeBrowser);
$("#browser-reload").addEventListener("click", () => { if (S.browserUid) openAs(S.browserUid, S.browserUrl); });
$("#share-cancel").addEventListener("click", () => { $("#share").hidden = true; });
connect();
