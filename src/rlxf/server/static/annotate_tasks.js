// The labelling page's task types beyond pairwise and Likert (annotate.js does those two and
// everything shared: the queue, saving, review, undo). Each widget renders an assignment,
// handles its keys and builds the judgement that save() sends (server/tasks.py checks it).
"use strict";

// The server splits steps the same way (tasks.steps_of): on "\n", trimming spaces, tabs, CR.
function stepsOf(text) {
  return text.split("\n").map(s => s.replace(/^[ \t\r]+|[ \t\r]+$/g, "")).filter(s => s.length > 0);
}

// A ranking as tiers, best first: [[2, 0], [1]] is "2 = 0 > 1"; responses left out rank below
// every tier, unordered (a top-k ranking). The server gets ranking (flat) and ties (tiers of 2+).
function tiersOf(j) {
  const groups = new Map();
  for (const g of j.ties || []) for (const i of g) groups.set(i, g);
  const tiers = [], done = new Set();
  for (const i of j.ranking) {
    if (done.has(i)) continue;
    const g = groups.get(i) || [i];
    g.forEach(x => done.add(x));
    tiers.push([...g]);
  }
  return tiers;
}

function tiersText(tiers, n) {
  const text = tiers.map(t => t.map(i => i + 1).join(" = ")).join(" > ");
  return tiers.flat().length < n ? text + " > the rest" : text;
}

const rankingWidget = {
  tiers: [], n: 0, tieNext: false,
  render(a, j) {
    this.n = a.responses.length;
    const box = document.getElementById("responses");
    box.textContent = "";
    box.style.gridTemplateColumns = `repeat(${this.n === 4 ? 2 : Math.min(this.n, 3)}, 1fr)`;
    a.responses.forEach((text, i) => {
      const card = el("article", { class: "response", id: "rank-" + i, "data-index": String(i) },
        el("header", {}, el("span", { class: "tag" , text: String(i + 1) }),
          "Response " + (i + 1), el("span", { class: "rank" }), el("kbd", { text: String(i + 1) })),
        el("div", { class: "text", text }));
      card.onclick = () => this.pick(i);
      box.append(card);
    });
    this.tiers = j && j.ranking ? tiersOf(j) : [];
    this.tieNext = false;
    this.show();
  },
  show() {
    const placed = this.tiers.flat();
    for (let i = 0; i < this.n; i++) {
      const card = document.getElementById("rank-" + i);
      const tier = this.tiers.findIndex(t => t.includes(i));
      card.classList.toggle("placed", tier >= 0);
      card.querySelector(".rank").textContent = tier >= 0 ? "#" + (tier + 1) +
        (this.tiers[tier].length > 1 ? " (tie)" : "") : "";
    }
    const ol = document.getElementById("order");
    ol.textContent = "";
    for (const t of this.tiers) ol.append(el("li", { text: t.map(i => "Response " + (i + 1)).join(" = ") }));
    if (!this.tiers.length) ol.append(el("li", { class: "muted", text: "press the number of the best response" }));
    else if (placed.length < this.n) ol.append(el("li", { class: "muted", text: "the rest (unranked): Enter saves the top " + placed.length }));
    document.getElementById("tie-next").classList.toggle("on", this.tieNext);
  },
  pick(i) {
    if (i >= this.n) return;
    const last = this.tiers[this.tiers.length - 1];
    if (this.tiers.flat().includes(i)) {
      // "=" then the response that just placed itself (the last one): tie it with the tier before
      if (this.tieNext && this.tiers.length > 1 && last.length === 1 && last[0] === i) {
        this.tiers.pop();
        this.tiers[this.tiers.length - 1].push(i);
      }
    } else if (this.tieNext && last) {
      last.push(i);
    } else {
      this.tiers.push([i]);
    }
    this.tieNext = false;
    const placed = this.tiers.flat();
    if (placed.length === this.n - 1) {  // the last one places itself
      for (let k = 0; k < this.n; k++) if (!placed.includes(k)) this.tiers.push([k]);
    }
    this.show();
  },
  tie() {
    if (!this.tiers.length) { status("Pick the best response first; = ties the next pick with it", "warn"); return; }
    this.tieNext = !this.tieNext;
    this.show();
  },
  submit() {
    if (!this.tiers.length) { status("Pick at least the best response first", "warn"); return; }
    const ties = this.tiers.filter(t => t.length > 1).map(t => [...t]);
    save({ ranking: this.tiers.flat(), ...(ties.length ? { ties } : {}) });
  },
  key(k) {
    if (/^[1-9]$/.test(k) && Number(k) <= this.n) this.pick(Number(k) - 1);
    else if (k === "=") this.tie();
    else if (k === "r") { this.tiers = []; this.tieNext = false; this.show(); }
    else if (k === "Enter") this.submit();
    else return false;
    return true;
  },
  wire() {
    document.getElementById("reset-order").onclick = () => { this.tiers = []; this.tieNext = false; this.show(); };
    document.getElementById("tie-next").onclick = () => this.tie();
    document.getElementById("save-answer").onclick = () => this.submit();
  },
  describe(j, a) { return "order " + tiersText(tiersOf(j), a ? a.responses.length : j.ranking.length); },
};

const textWidget = {  // edit and critique: a text box
  box() { return document.getElementById("answer-text"); },
  render(a, j) {
    document.getElementById("text-0").textContent = a.responses[0];
    this.box().value = j && j.text !== null ? j.text : (TASK === "edit" ? a.responses[0] : "");
    if (back < 0) this.box().focus();
  },
  submit() {
    const value = this.box().value;
    if (!value.trim()) { status(TASK === "edit" ? "Write the corrected response first" : "Write your critique first", "warn"); return; }
    save({ text: value });
  },
  key(k) {
    if (k !== "e") return false;
    this.box().focus();
    return true;
  },
  wire() {
    this.box().addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); this.submit(); }
      else if (ev.key === "Escape") { ev.preventDefault(); this.box().blur(); }
    });
    document.getElementById("save-answer").onclick = () => this.submit();
  },
  describe(j, a) {
    if (TASK === "edit") return j.text === a.responses[0] ? "kept unchanged" : "corrected";
    return "critique “" + (j.text.length > 40 ? j.text.slice(0, 40) + "…" : j.text) + "”";
  },
};

const stepsWidget = {
  marks: [], index: 0, n: 0,
  render(a, j) {
    const list = stepsOf(a.responses[0]);
    this.n = list.length;
    this.marks = list.map((_, i) => {
      const v = j && j.ratings ? j.ratings["step " + (i + 1)] : undefined;
      return v === undefined ? undefined : v === 1;
    });
    this.index = 0;
    const ol = document.getElementById("steps");
    ol.textContent = "";
    list.forEach((s, i) => {
      const ok = el("button", { type: "button", class: "mark ok", title: "correct (c)", text: "✓ correct" });
      const bad = el("button", { type: "button", class: "mark bad", title: "incorrect (x)", text: "✗ incorrect" });
      ok.onclick = () => { this.index = i; this.mark(true); };
      bad.onclick = () => { this.index = i; this.mark(false); };
      ol.append(el("li", { "data-step": String(i) }, el("span", { class: "step-text", text: s }), ok, bad));
    });
    this.show();
  },
  show() {
    document.querySelectorAll("#steps li").forEach((li, i) => {
      li.classList.toggle("active", i === this.index);
      li.classList.toggle("correct", this.marks[i] === true);
      li.classList.toggle("incorrect", this.marks[i] === false);
    });
  },
  mark(v) {
    this.marks[this.index] = v;
    this.index = Math.min(this.n - 1, this.index + 1);
    this.show();
  },
  submit() {
    const left = this.marks.filter(m => m === undefined).length;
    if (left) { status(`Mark every step first (${left} left)`, "warn"); return; }
    save({ steps: [...this.marks] });
  },
  key(k) {
    if (k === "c") this.mark(true);
    else if (k === "x") this.mark(false);
    else if (k === "ArrowDown") { this.index = Math.min(this.n - 1, this.index + 1); this.show(); }
    else if (k === "ArrowUp") { this.index = Math.max(0, this.index - 1); this.show(); }
    else if (k === "Enter") this.submit();
    else return false;
    return true;
  },
  wire() { document.getElementById("save-answer").onclick = () => this.submit(); },
  describe(j) {
    const values = Object.values(j.ratings);
    return `${values.filter(v => v === 1).length} of ${values.length} steps correct`;
  },
};

const TASK_WIDGETS = { ranking: rankingWidget, edit: textWidget, critique: textWidget, steps: stepsWidget };
