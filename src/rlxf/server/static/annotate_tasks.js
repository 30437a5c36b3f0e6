// The labelling page's task types beyond pairwise and Likert (annotate.js does those two and
// everything shared: the queue, saving, review, undo). Each widget renders an assignment,
// handles its keys and builds the judgement that save() sends (server/tasks.py checks it).
"use strict";

// The server splits steps the same way (tasks.steps_of): on "\n", trimming spaces, tabs, CR.
function stepsOf(text) {
  return text.split("\n").map(s => s.replace(/^[ \t\r]+|[ \t\r]+$/g, "")).filter(s => s.length > 0);
}

const rankingWidget = {
  order: [], n: 0,
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
    this.order = j && j.ranking ? [...j.ranking] : [];
    this.show();
  },
  show() {
    for (let i = 0; i < this.n; i++) {
      const card = document.getElementById("rank-" + i);
      const pos = this.order.indexOf(i);
      card.classList.toggle("placed", pos >= 0);
      card.querySelector(".rank").textContent = pos >= 0 ? "#" + (pos + 1) : "";
    }
    const ol = document.getElementById("order");
    ol.textContent = "";
    for (const i of this.order) ol.append(el("li", { text: "Response " + (i + 1) }));
    if (!this.order.length) ol.append(el("li", { class: "muted", text: "press the number of the best response" }));
  },
  pick(i) {
    if (i >= this.n || this.order.includes(i)) return;
    this.order.push(i);
    if (this.order.length === this.n - 1) {  // the last one places itself
      for (let k = 0; k < this.n; k++) if (!this.order.includes(k)) this.order.push(k);
    }
    this.show();
  },
  submit() {
    if (this.order.length !== this.n) { status(`Order all ${this.n} responses first`, "warn"); return; }
    save({ ranking: [...this.order] });
  },
  key(k) {
    if (/^[1-9]$/.test(k) && Number(k) <= this.n) this.pick(Number(k) - 1);
    else if (k === "r") { this.order = []; this.show(); }
    else if (k === "Enter") this.submit();
    else return false;
    return true;
  },
  wire() {
    document.getElementById("reset-order").onclick = () => { this.order = []; this.show(); };
    document.getElementById("save-answer").onclick = () => this.submit();
  },
  describe(j) { return "order " + j.ranking.map(i => i + 1).join(" > "); },
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
