// A stand-in for LINE's LIFF SDK (https://static.line-scdn.net/liff/edge/2/sdk.js), served only by the
// simulator console (`python -m bot dev` points the bot's LIFF page here; production loads LINE's own).
// The same calls a LIFF page makes, answered by the console for the virtual customer whose phone shows the
// page (the console serves it under /phone/{uid}/): init, isInClient, isLoggedIn, getIDToken (a token the
// stand-in's /oauth2/v2.1/verify accepts), getFriendship, requestFriendship (the customer follows: a signed
// follow webhook), isApiAvailable and shareTargetPicker (pick other customers; they receive the messages).
"use strict";
(function () {
  const match = location.pathname.match(/^\/phone\/([^/]+)\//);
  const uid = match ? decodeURIComponent(match[1]) : null;
  let idToken = null;
  let liffId = null;

  function fail(code, message) {
    const error = new Error(message);
    error.code = code;
    return error;
  }

  async function call(what, body) {
    if (!uid) throw fail("FORBIDDEN", "not opened in the simulator's LIFF browser");
    const response = await fetch(`/api/customers/${encodeURIComponent(uid)}/liff/${what}`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body || {}),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw fail(String(response.status), answer.error || `HTTP ${response.status}`);
    return answer;
  }

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    Object.assign(node, props || {});
    for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    return node;
  }

  // LINE's target picker, drawn over the page: the other virtual customers, any number of them
  function picker(messages) {
    return new Promise((resolve) => {
      fetch("/api/state").then((r) => r.json()).then((state) => {
        const others = state.customers.filter((c) => c.uid !== uid);
        const box = el("div", { id: "liff-share-target-picker" });
        Object.assign(box.style, { position: "fixed", inset: "0", background: "rgba(0,0,0,.45)", display: "flex",
          alignItems: "flex-end", zIndex: "2147483647", fontFamily: "sans-serif" });
        const sheet = el("div", {});
        Object.assign(sheet.style, { background: "#fff", width: "100%", padding: "16px", borderRadius: "16px 16px 0 0" });
        const choices = others.map((c) => {
          const input = el("input", { type: "checkbox", value: c.uid });
          input.dataset.name = c.name;
          const label = el("label", {}, input, " ", c.name);
          Object.assign(label.style, { display: "block", padding: "8px 0", fontSize: "16px" });
          return { input, label };
        });
        const send = el("button", { type: "button", id: "liff-share-send" }, "送信 send");
        const cancel = el("button", { type: "button", id: "liff-share-cancel" }, "キャンセル cancel");
        const done = (value) => { box.remove(); resolve(value); };
        send.addEventListener("click", async () => {
          const to = choices.filter((c) => c.input.checked).map((c) => c.input.value);
          if (!to.length) return;
          try { await call("share", { to, messages }); done({ status: "success" }); } catch (error) { done(false); }
        });
        cancel.addEventListener("click", () => done(false));
        sheet.append(el("h3", {}, "友だちを選択 choose friends"), ...choices.map((c) => c.label),
          others.length ? "" : "(no other customers)", el("div", {}, send, " ", cancel));
        box.append(sheet);
        document.body.append(box);
      }).catch(() => resolve(false));
    });
  }

  window.liff = {
    id: null,
    async init(config) {
      liffId = config && config.liffId;
      // LINE opens the endpoint with the LIFF URL's path and query in liff.state; init puts them back
      const params = new URLSearchParams(location.search);
      const state = params.get("liff.state");
      if (state !== null) {
        location.replace(location.pathname.replace(/\/$/, "") + state);
        return new Promise(() => {}); // the page is going away
      }
      const answer = await call("login", { liff_id: liffId });
      idToken = answer.id_token;
      this.id = liffId;
    },
    isInClient: () => uid !== null,
    isLoggedIn: () => idToken !== null,
    getIDToken: () => idToken,
    getOS: () => "ios",
    getLanguage: () => navigator.language,
    getVersion: () => "2.28.0-shokai-simulator",
    getFriendship: () => call("friendship").then((answer) => ({ friendFlag: answer.friendFlag === true })),
    requestFriendship: () => call("request-friendship").then(() => undefined),
    isApiAvailable: (name) => name === "shareTargetPicker",
    shareTargetPicker: (messages) => picker(messages),
    closeWindow: () => parent.postMessage({ shokaiLiffClose: true }, "*"),
  };
})();
