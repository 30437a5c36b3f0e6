// The labelling page: keyboard first. A label is saved before the next item shows; a failed
// save is retried with the same idempotency key, so it is stored exactly once.
"use strict";
const app = document.getElementById("app");
const PROJECT = Number(app.dataset.project);
const TASK = app.dataset.task;
const SCALE = Number(app.dataset.scale);
const DEFAULT_STRENGTH = Number(app.dataset.defaultStrength);
const ASPECTS = app.dataset.aspects ? app.dataset.aspects.split(",") : [];
const $ = (id) => document.getElementById(id);
const WIDGET = TASK_WIDGETS[TASK] || null;  // annotate_tasks.js: ranking, edit, critique, steps

let queue = [];       // unlabelled assignments; queue[0] is the work item
let history = [];     // labelled assignments, newest first
let historyComplete = false;
let back = -1;        // -1: showing queue[0]; i >= 0: reviewing history[i]
let strength = DEFAULT_STRENGTH;
let busy = false;
let exhausted = false;
let shownAt = performance.now();
let mine = null;
let ratings = {};
let aspectIndex = 0;

function current() { return back >= 0 ? history[back] : queue[0]; }

function status(text, kind) {
  const s = $("status");
  s.textContent = text;
  s.className = "status " + (kind || "");
}

function describe(j, a) {
  if (!j) return "";
  if (WIDGET) return WIDGET.describe(j, a);
  if (j.ratings) return ASPECTS.map(a => a + " " + j.ratings[a]).join(", ");
  if (j.tie) return "tie";
  const names = { 1: "slightly", 2: "clearly", 3: "much" };
  const how = SCALE === 3 && j.strength ? names[j.strength] + " " : "";
  return (j.choice === 0 ? "A" : "B") + " " + how + "better";
}

function renderProgress() {
  if (!mine) return;
  const left = mine.pending + mine.open_slots;
  $("mycount").textContent = `${mine.done} labelled by you · ${mine.pending} in your queue` +
    (mine.open_slots ? ` · ${mine.open_slots} more wanted in this project` : "");
  const total = mine.done + left;
  $("mybar").style.width = (total ? 100 * mine.done / total : 100) + "%";
}

function renderStrength() {
  for (const b of document.querySelectorAll("#strength button")) {
    const on = Number(b.dataset.strength) === strength;
    b.classList.toggle("on", on);
    b.setAttribute("aria-checked", on ? "true" : "false");
  }
}

function renderLikert() {
  document.querySelectorAll("#likert .aspect").forEach((row, i) => {
    row.classList.toggle("active", i === aspectIndex);
    for (const b of row.querySelectorAll("button")) {
      b.classList.toggle("on", ratings[row.dataset.aspect] === Number(b.dataset.value));
    }
  });
}

function render() {
  const a = current();
  $("work").hidden = !a;
  $("done").hidden = !!a;
  renderProgress();
  if (!a) return;
  const ctx = $("context");
  ctx.textContent = "";
  for (const m of a.context || []) ctx.append(el("div", { class: "turn " + m.role, text: m.role + ": " + m.content }));
  $("prompt").textContent = a.prompt;
  a.responses.forEach((r, i) => { const t = $("text-" + i); if (t) t.textContent = r; });
  const j = a.judgement;
  for (const i of [0, 1]) {
    const card = $("resp-" + i);
    if (card) card.classList.toggle("chosen", !!(j && !j.tie && j.choice === i));
  }
  const pair = document.querySelector(".pair");
  if (pair) pair.classList.toggle("tied", !!(j && j.tie));
  const v = $("viewing");
  if (back >= 0) {
    v.hidden = false;
    v.textContent = `Reviewing your ${back === 0 ? "last" : "earlier"} label: ${describe(j, a)}. ` +
      (TASK === "pairwise" ? "Press 1 / 2 / t to change it, " : TASK === "likert" ? "Rate again and press Enter to change it, "
        : "Change it and save again, ") + "→ to go forward.";
  } else {
    v.hidden = true;
  }
  if (TASK === "pairwise") {
    if (j && j.strength) strength = j.strength;
    renderStrength();
  } else if (WIDGET) {
    WIDGET.render(a, j);
  } else {
    ratings = j && j.ratings ? { ...j.ratings } : {};
    aspectIndex = 0;
    renderLikert();
  }
  shownAt = performance.now();
}

async function refill() {
  if (exhausted || queue.length >= 3) return;
  const r = await api("POST", `/api/projects/${PROJECT}/next?n=10`);
  const known = new Set(queue.map(a => a.id));
  const fresh = r.assignments.filter(a => !known.has(a.id));
  const wasEmpty = queue.length === 0;
  queue.push(...fresh);
  mine = r.mine;
  // empty means nothing is left for this person, unless the server says others still hold
  // the last items (waiting): then "done" would be untrue, so ask again shortly
  exhausted = r.assignments.length === 0 && !r.waiting;
  if (r.waiting && queue.length === 0) {
    status("Waiting for the last items to free up…", "warn");
    setTimeout(() => refill().catch(e => status(e.message, "error")), 1000);
    return;
  }
  if (wasEmpty && back < 0) render(); else renderProgress();
}

async function loadHistory() {
  if (historyComplete) return;
  const before = history.length ? history[history.length - 1].position : undefined;
  const r = await api("GET", `/api/projects/${PROJECT}/assignments?done=true&limit=50` + (before ? "&before=" + before : ""));
  const known = new Set(history.map(a => a.id));
  history.push(...r.assignments.filter(a => !known.has(a.id)));
  historyComplete = r.assignments.length < 50;
}

const sleep = (ms) => new Promise(r => setTimeout(r, ms));

async function sendWithRetry(method, path, body) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await api(method, path, body);
    } catch (e) {
      const transient = !(e instanceof ApiError) || e.status >= 500;
      if (!transient) throw e;
      status("Connection problem — retrying, your label is kept…", "warn");
      await sleep(Math.min(8000, 300 * 2 ** attempt));
    }
  }
}

async function save(body) {
  const a = current();
  if (!a || busy) return;
  busy = true;
  const editing = back >= 0;
  body.key = newKey();
  body.duration_ms = Math.round(performance.now() - shownAt);
  status("Saving…");
  try {
    const res = await sendWithRetry(editing ? "PUT" : "POST", `/api/assignments/${a.id}/judgement`, body);
    a.judgement = res.judgement;
    if (editing) {
      back -= 1;
      status("Changed ✓ " + describe(res.judgement, a), "ok");
    } else {
      queue.shift();
      history.unshift(a);
      if (mine) { mine.done += 1; mine.pending = Math.max(0, mine.pending - 1); }
      status("Saved ✓ " + describe(res.judgement, a), "ok");
    }
    strength = DEFAULT_STRENGTH;
    render();
    refill().catch(e => status(e.message, "error"));
  } catch (e) {
    status(e.message, "error");
  } finally {
    busy = false;
  }
}

function choose(value) {
  const body = value === "tie" ? { tie: true } : { choice: value, strength };
  const btn = $(value === "tie" ? "choose-tie" : "choose-" + value);
  btn.classList.add("pressed");
  setTimeout(() => btn.classList.remove("pressed"), 150);
  save(body);
}

function rate(value) {
  ratings[ASPECTS[aspectIndex]] = value;
  if (aspectIndex < ASPECTS.length - 1) aspectIndex += 1;
  renderLikert();
}

function submitRatings() {
  const missing = ASPECTS.filter(a => !ratings[a]);
  if (missing.length) { status("Rate every aspect first: " + missing.join(", "), "warn"); return; }
  save({ ratings: { ...ratings } });
}

async function undo() {
  if (busy || !history.length) { status("Nothing to undo", "warn"); return; }
  busy = true;
  const a = history[0];
  try {
    await api("DELETE", `/api/assignments/${a.id}/judgement`);
    a.judgement = null;
    history.shift();
    queue.unshift(a);
    back = -1;
    if (mine) { mine.done -= 1; mine.pending += 1; }
    status("Undone — label this item again", "ok");
    render();
  } catch (e) { status(e.message, "error"); } finally { busy = false; }
}

async function previous() {
  if (back + 1 >= history.length) await loadHistory();
  if (back + 1 < history.length) { back += 1; render(); } else status("This is your first label", "warn");
}

function forward() {
  if (back < 0) return;
  back -= 1;
  if (back < 0) strength = DEFAULT_STRENGTH;
  render();
}

function toggle(id, force) {
  const d = $(id);
  d.hidden = force === undefined ? !d.hidden : !force;
}

document.addEventListener("keydown", (ev) => {
  if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.target.closest("input, textarea, select")) return;
  const k = ev.key;
  let handled = true;
  if (k === "g") toggle("guidelines");
  else if (k === "?") toggle("keys");
  else if (k === "Escape") { toggle("guidelines", false); toggle("keys", false); }
  else if (k === "ArrowLeft") previous();
  else if (k === "ArrowRight") forward();
  else if (k === "u" || k === "Backspace") undo();
  else if (TASK === "pairwise" && k === "1") choose(0);
  else if (TASK === "pairwise" && k === "2") choose(1);
  else if (TASK === "pairwise" && k === "t") choose("tie");
  else if (TASK === "pairwise" && document.querySelector(`#strength button[data-key="${CSS.escape(k)}"]`)) {
    strength = Number(document.querySelector(`#strength button[data-key="${CSS.escape(k)}"]`).dataset.strength);
    renderStrength();
  }
  else if (TASK === "likert" && /^[0-9]$/.test(k) && Number(k) >= 1 && Number(k) <= SCALE) rate(Number(k));
  else if (TASK === "likert" && k === "ArrowDown") { aspectIndex = Math.min(ASPECTS.length - 1, aspectIndex + 1); renderLikert(); }
  else if (TASK === "likert" && k === "ArrowUp") { aspectIndex = Math.max(0, aspectIndex - 1); renderLikert(); }
  else if (TASK === "likert" && k === "Enter") submitRatings();
  else if (WIDGET && WIDGET.key(k)) { /* the widget handled it */ }
  else handled = false;
  if (handled) ev.preventDefault();
});

function wire() {
  $("show-guidelines").onclick = () => toggle("guidelines");
  $("close-guidelines").onclick = () => toggle("guidelines", false);
  $("show-keys").onclick = () => toggle("keys");
  $("close-keys").onclick = () => toggle("keys", false);
  $("prev").onclick = previous;
  $("next").onclick = forward;
  $("undo").onclick = undo;
  if (TASK === "pairwise") {
    $("choose-0").onclick = () => choose(0);
    $("choose-1").onclick = () => choose(1);
    $("choose-tie").onclick = () => choose("tie");
    for (const b of document.querySelectorAll("#strength button")) {
      b.onclick = () => { strength = Number(b.dataset.strength); renderStrength(); };
    }
  } else if (WIDGET) {
    WIDGET.wire();
  } else {
    document.querySelectorAll("#likert .aspect").forEach((row, i) => {
      for (const b of row.querySelectorAll("button")) {
        b.onclick = () => { aspectIndex = i; rate(Number(b.dataset.value)); };
      }
    });
    $("likert").append(el("button", { type: "button", class: "primary", id: "save-ratings", text: "Save (Enter)" }));
    $("save-ratings").onclick = submitRatings;
  }
}

document.addEventListener("DOMContentLoaded", async () => {
  wire();
  try {
    await refill();
    render();
    loadHistory().catch(() => {});
  } catch (e) { status(e.message, "error"); }
});
