// The curator's review page: agreement on a chosen subset, the review queue, one item's
// judgements side by side, and the decision (accept a label or set the final one).
"use strict";
const root = document.getElementById("review");
const PROJECT = Number(root.dataset.project);
const TASK = root.dataset.task;
const SCALE = Number(root.dataset.scale);
const ASPECTS = root.dataset.aspects ? root.dataset.aspects.split(",") : [];
const $ = (id) => document.getElementById(id);
const BASE = `/api/admin/projects/${PROJECT}`;
let shown = null;  // the item_id in the item panel

function num(x) { return x === null || x === undefined ? "–" : x.toFixed(2); }

function labelsText(labels) {
  return Object.entries(labels).map(([k, n]) => `${k} ×${n}`).join(", ");
}

async function measure(ev) {
  if (ev) ev.preventDefault();
  const f = new FormData($("agreement-form"));
  const q = new URLSearchParams();
  for (const k of ["annotators", "items"]) if (f.get(k).trim()) q.set(k, f.get(k).trim());
  try {
    const a = await api("GET", `${BASE}/agreement?${q}`);
    $("a-raw").textContent = pct(a.raw);
    $("a-alpha").textContent = num(a.krippendorff_alpha);
    $("a-ac1").textContent = num(a.gwet_ac1);
    $("a-items").textContent = `${a.items_with_overlap} / ${a.items}`;
    $("a-people").textContent = `${a.annotators} · ${a.judgements}`;
    const tbody = document.querySelector("#per-item tbody");
    tbody.textContent = "";
    for (const it of a.per_item.slice(0, 200)) tbody.append(itemRow(it.item_id,
      el("td", { text: pct(it.agreement) }), el("td", { class: "label-key", text: labelsText(it.labels) })));
  } catch (e) { toast(e.message, "error"); }
}

// a table row for an item: its id, the given cells, and a button that opens it below
function itemRow(itemId, ...cells) {
  const open = el("button", { type: "button", class: "link", text: "open" });
  open.onclick = () => showItem(itemId);
  return el("tr", { "data-item": itemId, class: itemId === shown ? "selected" : "" },
    el("td", { class: "label-key", text: itemId }), ...cells, el("td", {}, open));
}

async function loadQueue() {
  const r = await api("GET", `${BASE}/review?status=${$("status").value}`);
  $("counts").textContent = `${r.open} to decide · ${r.decided} decided`;
  const tbody = document.querySelector("#queue tbody");
  tbody.textContent = "";
  if (!r.items.length) tbody.append(el("tr", {}, el("td", { colspan: "6", class: "muted", text: "Nothing to review here." })));
  for (const it of r.items) {
    const d = it.decision;
    tbody.append(itemRow(it.item_id, el("td", { text: it.reasons.join(", ") || "–" }),
      el("td", { text: pct(it.agreement) }),
      el("td", { class: "label-key", text: labelsText(it.labels) + (it.gold_answer ? ` (gold: ${it.gold_answer})` : "") }),
      el("td", { class: "decided", text: d ? `${d.label} by ${d.by} (${d.method})` : "–" })));
  }
}

function details(j) {
  if (TASK === "pairwise") return j.strength ? "strength " + j.strength : "";
  if (TASK === "edit" || TASK === "critique") return j.text || "";
  return "";
}

async function decide(body) {
  try {
    const view = await api("POST", `${BASE}/decisions`, { item_id: shown, ...body });
    toast("Final label saved: " + (view.decisions[0].label || view.decisions[0].method));
    renderItem(view);
    loadQueue();
  } catch (e) { toast(e.message, "error"); }
}

function renderItem(v) {
  shown = v.item_id;
  $("item").hidden = false;
  $("item-id").textContent = v.item_id;
  $("item-why").textContent = (v.reasons.join(", ") || "no disagreement") + " · agreement " + pct(v.agreement) +
    (v.gold_answer ? ` · gold answer ${v.gold_answer}` : "");
  $("item-prompt").textContent = v.prompt;
  const ol = $("item-responses");
  ol.textContent = "";
  v.responses.forEach((r, i) => ol.append(el("li", { text: (TASK === "pairwise" ? "AB"[i] + ": " : "") + r })));
  const tbody = document.querySelector("#judgements tbody");
  tbody.textContent = "";
  for (const j of v.judgements) {
    const accept = el("button", { type: "button", class: "accept", text: "Accept" });
    accept.onclick = () => decide({ accept: j.annotator, note: new FormData($("final-form")).get("note") });
    tbody.append(el("tr", { "data-annotator": j.annotator }, el("td", { class: "pid", text: j.annotator }),
      el("td", { class: "label-key", text: j.label || "–" }), el("td", { text: details(j) }),
      el("td", { text: j.created ? new Date(j.created).toLocaleString() : "" }), el("td", {}, accept)));
  }
  const ul = $("decisions");
  ul.textContent = "";
  if (!v.decisions.length) ul.append(el("li", { class: "muted", text: "not decided yet" }));
  v.decisions.forEach((d, i) => ul.append(el("li", { class: i ? "decided" : "",
    text: `${i ? "" : "final: "}${d.label || "(text)"} — ${d.method}${d.accepted_from ? " from " + d.accepted_from : ""} by ${d.by}` +
      `, ${new Date(d.created).toLocaleString()}${d.note ? " · “" + d.note + "”" : ""}` })));
  for (const row of document.querySelectorAll("#queue tbody tr, #per-item tbody tr")) row.classList.toggle("selected", row.dataset.item === shown);
}

async function showItem(itemId) {
  try { renderItem(await api("GET", `${BASE}/item?id=${encodeURIComponent(itemId)}`)); }
  catch (e) { toast(e.message, "error"); }
}

function finalFields() {
  const box = $("final-fields");
  if (TASK === "pairwise") {
    box.append(el("label", { class: "inline-label" }, "Final ",
      el("select", { name: "final" }, el("option", { value: "a", text: "A is better" }),
        el("option", { value: "b", text: "B is better" }), el("option", { value: "tie", text: "tie" }))),
      el("label", { class: "inline-label" }, " strength ", el("input", { name: "strength", type: "number", min: "1", max: String(SCALE) })));
  } else if (TASK === "ranking") {
    box.append(el("label", {}, "Order, best first (response numbers; = ties, a prefix is a top k)",
      el("input", { name: "order", placeholder: "e.g. 3 = 1 > 2" })));
  } else if (TASK === "likert") {
    for (const a of ASPECTS) box.append(el("label", { class: "inline-label" }, a + " ", el("input", { name: "rating-" + a, type: "number", min: "1", max: String(SCALE), required: "" })));
  } else if (TASK === "steps") {
    box.append(el("label", {}, "Each step, in order: 1 correct, 0 incorrect", el("input", { name: "steps", placeholder: "e.g. 1 0 1" })));
  } else {
    box.append(el("label", {}, TASK === "edit" ? "The corrected response" : "The critique", el("textarea", { name: "text", rows: "4" })));
  }
}

function finalLabel(f) {
  if (TASK === "pairwise") {
    const v = f.get("final");
    if (v === "tie") return { tie: true };
    return { choice: v === "a" ? 0 : 1, ...(f.get("strength") ? { strength: Number(f.get("strength")) } : {}) };
  }
  if (TASK === "ranking") {
    const tiers = f.get("order").split(">").map(t => t.split("=").map(x => Number(x.trim()) - 1));
    const ties = tiers.filter(t => t.length > 1);
    return { ranking: tiers.flat(), ...(ties.length ? { ties } : {}) };
  }
  if (TASK === "likert") return { ratings: Object.fromEntries(ASPECTS.map(a => [a, Number(f.get("rating-" + a))])) };
  if (TASK === "steps") return { steps: f.get("steps").trim().split(/\s+/).map(x => x === "1") };
  return { text: f.get("text") };
}

document.addEventListener("DOMContentLoaded", () => {
  finalFields();
  $("agreement-form").addEventListener("submit", measure);
  $("status").onchange = () => loadQueue().catch(e => toast(e.message, "error"));
  $("final-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = new FormData($("final-form"));
    decide({ ...finalLabel(f), note: f.get("note") });
  });
  measure();
  loadQueue().catch(e => toast(e.message, "error"));
});
