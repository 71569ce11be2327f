// Staff review console: list exchanges, filter, rate, approve/reject, write corrections;
// and the evolution/service report (per evolve round, per day) with its plot.
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

document.getElementById("report-load").addEventListener("click", loadReport);
document.getElementById("login").addEventListener("submit", (e) => { e.preventDefault(); load(); });
document.getElementById("filter").addEventListener("change", () => tokenInput.value && load());
