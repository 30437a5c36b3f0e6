"use strict";
const TASK_NAMES = { pairwise: "Compare two responses", likert: "Rate responses", ranking: "Rank responses",
  edit: "Correct responses", critique: "Critique responses", steps: "Check each step" };
document.addEventListener("DOMContentLoaded", async () => {
  const box = document.getElementById("projects");
  const list = await api("GET", "/api/projects");
  box.textContent = "";
  if (!list.length) { box.append(el("p", { class: "muted", text: "No open projects yet. Your admin will add one." })); return; }
  for (const p of list) {
    const card = el("a", { class: "card project-card", href: "/annotate/" + p.id, id: "project-" + p.id },
      el("h2", { text: p.name }),
      el("p", { class: "muted", text: (TASK_NAMES[p.task_type] || p.task_type) +
        " · you labelled " + p.mine.done + (p.mine.pending ? " · " + p.mine.pending + " waiting for you" : "") }),
      el("span", { class: "button primary", text: p.mine.done ? "Continue labelling →" : "Start labelling →" }));
    box.append(card);
  }
});
