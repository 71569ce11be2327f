// Staff review console: list exchanges, filter, rate, approve/reject, write corrections;
// and the evolution/service report (per evolve round, per day) with its plot; and the hand-off
// queue (a long poll on its cursor): claim a conversation, reply to the customer, release, close.
// The token stays in sessionStorage and travels only in the Authorization header.
"use strict";
const statusLine = document.getElementById("status");
const tokenInput = document.getElementById("token");
tokenInput.value = sessionStorage.getItem("endcloud.admin") || "";

function headers() {
  return {"authorization": "Bearer " + tokenInput.value, "content-type": "application/json"};
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text == null ? "" : String(text);
  row.appendChild(td);
  return td;
}

async function save(ex, body, tr) {
  const r = await fetch("/admin/reviews", {method: "POST", headers: headers(),
    body: JSON.stringify({exchange_id: ex.id, ...body})});
  tr.dataset.saved = r.ok ? "1" : "0";
  statusLine.textContent = r.ok ? "saved review #" + (await r.json()).id : "save failed (" + r.status + ")";
}

function reviewCell(tr, ex) {
  const td = cell(tr, "");
  const rating = document.createElement("select");
  rating.dataset.testid = "rating";
  for (const v of ["", "1", "2", "3", "4", "5"]) {
    const o = document.createElement("option");
    o.value = v; o.textContent = v || "rate";
    rating.appendChild(o);
  }
  rating.onchange = () => rating.value && save(ex, {rating: Number(rating.value)}, tr);
  const approve = document.createElement("button");
  approve.type = "button"; approve.textContent = "approve"; approve.dataset.testid = "approve";
  approve.onclick = () => save(ex, {verdict: "approve"}, tr);
  const reject = document.createElement("button");
  reject.type = "button"; reject.textContent = "reject"; reject.dataset.testid = "reject";
  reject.onclick = () => save(ex, {verdict: "reject"}, tr);
  const text = document.createElement("textarea");
  text.rows = 2; text.placeholder = "corrected reply"; text.dataset.testid = "correction";
  text.value = ex.correction || "";
  const fix = document.createElement("button");
  fix.type = "button"; fix.textContent = "save correction"; fix.dataset.testid = "save-correction";
  fix.onclick = () => text.value.trim() && save(ex, {corrected_reply: text.value, verdict: "reject"}, tr);
  td.append(rating, approve, reject, text, fix);
}

async function load() {
  sessionStorage.setItem("endcloud.admin", tokenInput.value);
  const filter = document.getElementById("filter").value;
  const r = await fetch("/admin/exchanges?limit=100&filter=" + encodeURIComponent(filter), {headers: headers()});
  if (!r.ok) {
    statusLine.textContent = r.status === 401 || r.status === 403 ? "wrong or missing staff token" : "error " + r.status;
    document.getElementById("table").hidden = true;
    return;
  }
  const rows = document.getElementById("rows");
  rows.replaceChildren();
  for (const ex of (await r.json()).data) {
    const tr = document.createElement("tr");
    tr.dataset.exchangeId = ex.id;
    cell(tr, ex.created_at.replace("T", " ").slice(0, 19));
    cell(tr, ex.query);
    cell(tr, ex.reply);
    cell(tr, ex.answered_by + (ex.escalation ? " (" + ex.escalation + ")" : ""));
    cell(tr, ex.match_score == null ? "-" : ex.match_score.toFixed(2));
    cell(tr, ex.ups + "/" + ex.downs);
    reviewCell(tr, ex);
    rows.appendChild(tr);
  }
  document.getElementById("table").hidden = false;
  statusLine.textContent = rows.children.length + " exchanges";
}

function num(v, digits) { return v == null ? "-" : Number(v).toFixed(digits); }
function pct(v) { return v == null ? "-" : (100 * v).toFixed(1) + " %"; }

function fill(id, rows) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren();
  for (const values of rows) {
    const tr = document.createElement("tr");
    for (const v of values) cell(tr, v);
    body.appendChild(tr);
  }
}

async function loadReport() {
  sessionStorage.setItem("endcloud.admin", tokenInput.value);
  const status = document.getElementById("report-status");
  const r = await fetch("/admin/report", {headers: headers()});
  if (!r.ok) {
    status.textContent = r.status === 401 || r.status === 403 ? "wrong or missing staff token" : "error " + r.status;
    return;
  }
  const rep = await r.json();
  fill("report-rounds", rep.rounds.map((x) => [x.id, x.status, x.selected, x.corrections, x.labelled,
    x.train_new + " + " + x.train_replay, x.cloud_calls, num(x.cloud_cost, 4),
    num(x.champion_final, 4), num(x.candidate_final, 4), num(x.diff_lower, 4)]));
  fill("report-days", rep.days.map((d) => [d.day, d.turns, pct(d.local_share), pct(d.escalation_rate),
    d.cloud_calls, num(d.cloud_cost, 4)]));
  document.getElementById("report-body").hidden = false;
  status.textContent = rep.rounds.length + " rounds, " + rep.days.length + " days";
  const png = await fetch("/admin/report.png", {headers: headers()});  // the token: a header, not a URL
  const img = document.getElementById("report-plot");
  if (png.ok) {
    if (img.src) URL.revokeObjectURL(img.src);
    img.src = URL.createObjectURL(await png.blob());
    img.hidden = false;
  }
}

// -- hand-offs to a person ------------------------------------------------------------------------
const staffInput = document.getElementById("staff-name");
staffInput.value = localStorage.getItem("endcloud.staff") || "";
const handoffList = document.getElementById("handoff-list");
const handoffStatus = document.getElementById("handoff-status");
const cards = new Map();  // hand-off id -> {el, item, fetchedAt, ...its parts}
let watchGen = 0, watchAbort = null;
const pause = (ms) => new Promise((done) => setTimeout(done, ms));
const FROM = {customer: "customer", bot: "bot", system: "bot (hand-off)"};

function me() { return staffInput.value.trim(); }

function ago(s) { return s < 60 ? Math.floor(s) + " s" : Math.floor(s / 60) + " min " + Math.floor(s % 60) + " s"; }

function button(parent, label, testid, onclick) {
  const b = document.createElement("button");
  b.type = "button"; b.textContent = label; b.dataset.testid = testid; b.onclick = onclick;
  parent.appendChild(b);
  return b;
}

function newCard(id) {
  const c = {el: document.createElement("article"), shown: ""};
  c.el.className = "handoff";
  c.el.dataset.handoffId = id;
  c.head = document.createElement("header");
  c.log = document.createElement("ol");
  c.log.className = "handoff-log";
  const bar = document.createElement("div");
  bar.className = "toolbar";
  c.claim = button(bar, "Claim", "claim", () => act(c, "claim", {}));
  c.release = button(bar, "Release to the bot", "release", () => act(c, "release", {}));
  c.close = button(bar, "Close", "close", () => act(c, "close", {}));
  c.text = document.createElement("textarea");
  c.text.rows = 2; c.text.placeholder = "reply to the customer"; c.text.dataset.testid = "handoff-text";
  c.send = button(document.createElement("div"), "Send reply", "handoff-send", () => {
    const text = c.text.value.trim();
    if (text) act(c, "reply", {text: text});
  });
  c.note = document.createElement("p");
  c.note.className = "status";
  c.el.append(c.head, c.log, bar, c.text, c.send.parentNode, c.note);
  return c;
}

function tick(c) {
  const it = c.item;
  const s = it.waiting_s + (Date.now() - c.fetchedAt) / 1000;
  c.head.textContent = "#" + it.id + " · " + (it.status === "claimed" ? "held by " + it.claimed_by : "waiting")
    + " · " + it.reason + " · asked " + ago(s) + " ago · conversation " + it.conversation_id;
}

function applyState(c) {
  const it = c.item, mine = it.status === "claimed" && it.claimed_by === me();
  c.el.dataset.status = it.status;
  c.el.dataset.claimedBy = it.claimed_by || "";
  c.claim.disabled = it.status !== "waiting";
  c.release.disabled = c.close.disabled = it.status === "claimed" && !mine;
  c.text.disabled = c.send.disabled = !mine;
  tick(c);
}

function showMessages(c, messages) {
  const key = JSON.stringify(messages);
  if (key === c.shown) return;
  c.shown = key;
  c.log.replaceChildren();
  for (const m of messages) {
    const li = document.createElement("li");
    li.dataset.sender = m.sender;
    const from = document.createElement("span");
    from.className = "from";
    from.textContent = (m.sender === "staff" ? m.staff || "staff" : FROM[m.sender] || m.sender) + ":";
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = m.text;
    li.append(from, text);
    c.log.appendChild(li);
  }
  c.log.scrollTop = c.log.scrollHeight;
}

function showQueue(items) {
  const now = Date.now(), open = new Set();
  items.forEach((it, i) => {
    open.add(it.id);
    let c = cards.get(it.id);
    if (!c) cards.set(it.id, c = newCard(it.id));
    c.item = it; c.fetchedAt = now;
    c.el.dataset.conversationId = it.conversation_id;
    applyState(c);
    showMessages(c, it.messages);
    // waiting first, then newest (the server's order); move a card only when it is out of place,
    // so a reply being typed keeps its focus
    if (handoffList.children[i] !== c.el) handoffList.insertBefore(c.el, handoffList.children[i] || null);
  });
  for (const [id, c] of cards) if (!open.has(id)) { c.el.remove(); cards.delete(id); }
  const waiting = items.filter((it) => it.status === "waiting").length;
  handoffStatus.textContent = items.length + " open, " + waiting + " waiting";
}

async function act(c, action, body) {
  const name = me();
  if (!name) { c.note.textContent = "enter your name first"; staffInput.focus(); return; }
  localStorage.setItem("endcloud.staff", name);
  const r = await fetch("/admin/handoffs/" + c.item.id + "/" + action, {method: "POST", headers: headers(),
    body: JSON.stringify({staff: name, ...body})});
  let answer = null;
  try { answer = await r.json(); } catch (err) { answer = null; }
  c.el.dataset.last = action + (r.ok ? "-ok" : "-failed");
  if (!r.ok) {
    c.note.textContent = action + " failed (" + r.status + "): " + ((answer && answer.error && answer.error.message) || "");
    return;
  }
  c.note.textContent = "";
  if (action === "claim") { c.item = {...c.item, status: answer.status, claimed_by: answer.claimed_by}; applyState(c); }
  if (action === "reply") c.text.value = "";
  if (action === "release" || action === "close") { c.el.remove(); cards.delete(c.item.id); }
  // every action moves the queue's cursor: the long poll answers with the new state at once
}

async function watchQueue() {
  sessionStorage.setItem("endcloud.admin", tokenInput.value);
  const gen = ++watchGen;
  if (watchAbort) watchAbort.abort();
  const abort = watchAbort = new AbortController();
  let cursor = 0, failures = 0;
  handoffStatus.textContent = "loading…";
  while (gen === watchGen) {
    let r = null, q = null;
    try {
      r = await fetch("/admin/handoffs?after=" + cursor + "&wait=20", {headers: headers(), signal: abort.signal});
      if (r.ok) q = await r.json();
    } catch (err) { q = null; }
    if (gen !== watchGen) return;
    if (q) {
      failures = 0;
      showQueue(q.data);
      cursor = q.cursor;
      if (!cursor) await pause(1000);  // nothing has happened yet: the server cannot wait on cursor 0
    } else if (r && (r.status === 401 || r.status === 403)) {
      handoffStatus.textContent = "wrong or missing staff token";
      return;
    } else {
      failures += 1;
      handoffStatus.textContent = "queue unavailable, retrying…";
      await pause(Math.min(10000, 500 * 2 ** failures));
    }
  }
}

setInterval(() => { for (const c of cards.values()) tick(c); }, 1000);
staffInput.addEventListener("input", () => {
  localStorage.setItem("endcloud.staff", me());
  for (const c of cards.values()) applyState(c);
});
document.getElementById("handoff-load").addEventListener("click", watchQueue);
if (tokenInput.value) watchQueue();

document.getElementById("report-load").addEventListener("click", loadReport);
document.getElementById("login").addEventListener("submit", (e) => { e.preventDefault(); load(); watchQueue(); });
document.getElementById("filter").addEventListener("change", () => tokenInput.value && load());
