// Customer chat: streams replies from /v1/chat/completions (SSE), thumbs per reply; and, once a
// conversation exists, a long poll on /v1/conversations/{id}/handoff for a person's messages
// (staff replies as bubbles with the colleague's name, joined/left events as status lines).
// Text is only ever inserted with textContent, never as HTML.
"use strict";
const log = document.getElementById("log");
const form = document.getElementById("form");
const input = document.getElementById("input");
const statusLine = document.getElementById("status");
const history = [];
let conversationId = null;
let handoffCursor = 0;  // the id of the last hand-off message shown
let polling = false;

async function token() {
  let t = localStorage.getItem("endcloud.token");
  if (!t) {
    const r = await fetch("/v1/customers", {method: "POST"});
    if (!r.ok) throw new Error("could not start a session (" + r.status + ")");
    t = (await r.json()).token;
    localStorage.setItem("endcloud.token", t);
  }
  return t;
}

function bubble(role, text, who) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  if (who) {
    const label = document.createElement("div");
    label.className = "who";
    label.textContent = who;
    div.appendChild(label);
  }
  const body = document.createElement("div");
  body.className = "text";
  body.textContent = text;
  div.appendChild(body);
  log.appendChild(div);
  log.scrollTop = log.scrollHeight;
  return div;
}

function thumbs(div, replyId) {
  const bar = document.createElement("div");
  bar.className = "thumbs";
  for (const [thumb, label] of [["up", "👍"], ["down", "👎"]]) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.dataset.testid = "thumb-" + thumb;
    b.setAttribute("aria-label", thumb === "up" ? "有帮助" : "没帮助");
    b.onclick = async () => {
      const r = await fetch("/v1/feedback", {
        method: "POST",
        headers: {"content-type": "application/json", "authorization": "Bearer " + await token()},
        body: JSON.stringify({reply_id: replyId, thumb: thumb}),
      });
      bar.dataset.state = r.ok ? "sent-" + thumb : "failed";
      statusLine.textContent = r.ok ? "感谢您的反馈" : "反馈发送失败";
      for (const other of bar.querySelectorAll("button")) other.disabled = r.ok;
    };
    bar.appendChild(b);
  }
  div.appendChild(bar);
}

async function send(text) {
  history.push({role: "user", content: text});
  const mine = bubble("user", text);
  const div = bubble("assistant", "");
  const body = div.querySelector(".text");
  const payload = {model: "", messages: history, stream: true};
  if (conversationId) payload.conversation_id = conversationId;
  const r = await fetch("/v1/chat/completions", {
    method: "POST",
    headers: {"content-type": "application/json", "authorization": "Bearer " + await token()},
    body: JSON.stringify(payload),
  });
  if (!r.ok) {
    if (r.status === 401) localStorage.removeItem("endcloud.token");
    const retry = r.headers.get("retry-after");
    body.textContent = r.status === 429 || r.status === 503
      ? "当前咨询人数较多，请" + (retry || "稍") + "秒后再试" : "抱歉，消息发送失败（" + r.status + "）";
    history.pop();
    return;
  }
  conversationId = r.headers.get("x-conversation-id") || conversationId;
  if (r.headers.get("x-handoff")) {  // a person holds the conversation: the message went to them
    await r.text();
    div.remove();
    mine.dataset.delivered = "person";
    pollHandoff();
    return;
  }
  const reader = r.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "", reply = "", replyId = null;
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, {stream: true});
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut).trim();
      buffer = buffer.slice(cut + 2);
      if (!event.startsWith("data:")) continue;
      const data = event.slice(5).trim();
      if (data === "[DONE]") continue;
      const chunk = JSON.parse(data);
      replyId = chunk.id;
      for (const c of chunk.choices || []) {
        if (c.delta && c.delta.content) {
          reply += c.delta.content;
          body.textContent = reply;
        }
      }
    }
  }
  pollHandoff();
  if (!reply) {  // nothing to show (and nothing to rate)
    div.remove();
    return;
  }
  div.dataset.replyId = replyId;
  div.dataset.done = "1";
  history.push({role: "assistant", content: reply});
  thumbs(div, replyId);
}

const EVENTS = {
  waiting: () => "正在为您转接人工客服，请稍候…",
  claimed: (staff) => "客服 " + (staff || "") + " 已接入，正在为您服务",
  released: () => "人工客服已离开，智能助手继续为您服务",
  closed: () => "人工服务已结束，智能助手继续为您服务",
};

function showHandoff(m) {
  if (m.sender === "staff") {
    const div = bubble("staff", m.text, "客服 " + (m.staff || ""));
    div.dataset.staff = m.staff || "";
    history.push({role: "assistant", content: m.text});  // the model sees it once it answers again
  } else if (m.sender === "system") {
    const line = document.createElement("div");
    line.className = "msg event";
    line.dataset.event = m.text;
    line.textContent = (EVENTS[m.text] || (() => m.text))(m.staff);
    log.appendChild(line);
    log.scrollTop = log.scrollHeight;
  }
}

const pause = (ms) => new Promise((done) => setTimeout(done, ms));

// One long poll at a time, for as long as the page has a conversation: a colleague may join
// because the customer asked, or take the conversation over from the console.
async function pollHandoff() {
  if (polling || !conversationId) return;
  polling = true;
  let failures = 0;
  try {
    while (conversationId) {
      let r = null;
      try {
        r = await fetch("/v1/conversations/" + encodeURIComponent(conversationId) + "/handoff?after="
                        + handoffCursor + "&wait=20", {headers: {"authorization": "Bearer " + await token()}});
      } catch (err) { r = null; }
      if (r && r.ok) {
        failures = 0;
        const got = await r.json();
        for (const m of got.messages) if (m.id > handoffCursor) showHandoff(m);
        handoffCursor = Math.max(handoffCursor, got.cursor);
        log.dataset.handoff = got.handoff ? got.handoff.status : "";
      } else if (r && (r.status === 401 || r.status === 404)) {
        return;  // not (or no longer) this customer's conversation
      } else {
        failures += 1;
        await pause(Math.min(30000, 1000 * 2 ** failures));
      }
    }
  } finally { polling = false; }
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const text = input.value.trim();
  if (!text) return;
  input.value = "";
  document.getElementById("send").disabled = true;
  try { await send(text); } catch (err) { statusLine.textContent = String(err); }
  finally { document.getElementById("send").disabled = false; input.focus(); }
});
