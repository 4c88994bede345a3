// The LIFF invite page's script (assets/pages/liff_invite.html; README "Invites through LIFF").
// Inside LINE: liff.init, the ID token to the server (which asks LINE who it is: nothing here names the
// person), the result, then the friendship and the share button. Anywhere else (no LIFF, or outside the LIFF
// browser) the page stays today's invite page: add the account, then send the pre-filled code.
"use strict";
(function () {
  const page = document.getElementById("page");
  const data = page.dataset;
  const result = document.getElementById("result");
  const addFriend = document.getElementById("liff-add-friend");
  const share = document.getElementById("share");
  const FOLLOW_CHECKS = 10; // after the friendship prompt, how often to ask for the new status (the follow is async)
  const FOLLOW_CHECK_MS = 1500;

  function show(status, message) {
    result.dataset.status = status;
    result.textContent = message;
  }

  function codeNow() {
    // after liff.init() the LIFF URL's query is back in place (liff.state); the page's own copy otherwise
    const fromUrl = new URLSearchParams(location.search).get("code");
    return (fromUrl || data.code || "").toUpperCase();
  }

  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    let answer = null;
    try { answer = await response.json(); } catch (_) { /* not JSON */ }
    return { status: response.status, answer };
  }

  async function attribute() {
    const token = liff.getIDToken();
    if (!token) { show("error", data.error); return null; }
    const { status, answer } = await post("v1/attribution", { id_token: token, code: codeNow() });
    if (status !== 200 || !answer) { show("error", data.error); return null; }
    show(answer.status, answer.message || answer.status);
    return answer;
  }

  async function isFriend() {
    try { return (await liff.getFriendship()).friendFlag === true; } catch (_) { return false; }
  }

  async function askFriendship(answer) {
    if (await isFriend()) return;
    if (typeof liff.requestFriendship === "function") {
      try { await liff.requestFriendship(); } catch (_) { /* dismissed, or not available in this size */ }
      if (!(await isFriend())) { addFriend.hidden = false; return; }
      if (answer && answer.status === "awaiting_follow") {
        // the follow reaches the bot as a webhook: ask again until it turned into a referral
        for (let i = 0; i < FOLLOW_CHECKS; i += 1) {
          await new Promise((resolve) => setTimeout(resolve, FOLLOW_CHECK_MS));
          const now = await attribute();
          if (!now || now.status !== "awaiting_follow") return;
        }
      }
      return;
    }
    addFriend.hidden = false; // older LINE: the add-friend link (https://line.me/R/ti/p/{LINE ID})
  }

  function setUpShare() {
    if (!(liff.isApiAvailable && liff.isApiAvailable("shareTargetPicker"))) return;
    let card = null;
    try { card = JSON.parse(data.card); } catch (_) { return; }
    share.hidden = false;
    share.addEventListener("click", async () => {
      let picked = null;
      try { picked = await liff.shareTargetPicker([card], { isMultiple: true }); } catch (_) { return; }
      if (picked && picked.status === "success") {
        await post("v1/shares", { id_token: liff.getIDToken(), code: codeNow() });
        share.textContent = data.shared;
      }
    });
  }

  async function start() {
    if (typeof liff === "undefined" || !data.liffId) return; // no SDK: today's page as it is
    try {
      await liff.init({ liffId: data.liffId });
    } catch (_) {
      return;
    }
    if (!liff.isInClient()) return; // an external browser: today's page (the oaMessage button)
    document.getElementById("plain").hidden = true;
    document.getElementById("liff").hidden = false;
    show("checking", data.checking);
    setUpShare();
    const answer = await attribute();
    await askFriendship(answer);
  }

  start();
})();
