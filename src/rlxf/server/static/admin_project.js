"use strict";
const PID = Number(document.getElementById("project").dataset.project);

function fmt(x, digits) { return x === null || x === undefined ? "–" : x.toFixed(digits); }

async function refresh() {
  const s = await api("GET", `/api/admin/projects/${PID}/stats`);
  const g = s.progress;
  document.getElementById("s-progress").textContent = `${g.judgements_regular} / ${g.target}`;
  document.getElementById("s-bar").style.width = (g.target ? 100 * g.judgements_regular / g.target : 0) + "%";
  document.getElementById("s-complete").textContent = `${g.items_complete} / ${g.items}`;
  document.getElementById("s-raw").textContent = pct(s.agreement.raw);
  document.getElementById("s-alpha").textContent = fmt(s.agreement.krippendorff_alpha, 2);
  document.getElementById("s-flagged").textContent = String(s.flagged.length);
  document.getElementById("s-flagged").classList.toggle("bad", s.flagged.length > 0);
  const tbody = document.querySelector("#people tbody");
  tbody.textContent = "";
  if (!s.annotators.length) tbody.append(el("tr", {}, el("td", { colspan: "9", class: "muted", text: "Nobody has started yet." })));
  for (const a of s.annotators) {
    const gold = a["gold/n"] ? `${pct(a["gold/accuracy"])} of ${a["gold/n"]}` : "–";
    const time = a.median_ms === null ? "–" : (a.median_ms / 1000).toFixed(1) + " s";
    const flags = el("td", { class: a.flags.length ? "flags bad" : "flags" , text: a.flags.length ? "⚑ " + a.flags.join("; ") : "ok" });
    tbody.append(el("tr", { id: "row-" + a.pid }, el("td", { class: "pid", text: a.pid }), el("td", { text: a.note }),
      el("td", { text: String(a.judgements) }), el("td", { text: String(a.pending) }),
      el("td", { text: pct(a["agreement/with_others"]) + (a["agreement/pairs"] ? ` (${a["agreement/pairs"]} pairs)` : "") }),
      el("td", { text: pct(a["agreement/with_majority"]) }), el("td", { text: gold }), el("td", { text: time }), flags));
  }
  document.getElementById("updated").textContent = "live · updated " + new Date().toLocaleTimeString();
}

document.addEventListener("DOMContentLoaded", () => {
  refresh();
  setInterval(() => { if (!document.hidden) refresh().catch(() => {}); }, 5000);
  const form = document.getElementById("settings-form");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const p = await api("PATCH", `/api/admin/projects/${PID}`, { overlap: Number(form.overlap.value),
        gold_rate: Number(form.gold_rate.value), status: form.status.value, guidelines: form.guidelines.value });
      document.getElementById("k").textContent = p.overlap;
      document.getElementById("status-label").textContent = p.status;
      document.getElementById("settings-saved").textContent = "saved ✓";
      refresh();
    } catch (e) { toast(e.message, "error"); }
  });
});
