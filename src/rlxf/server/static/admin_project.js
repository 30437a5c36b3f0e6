"use strict";
const PID = Number(document.getElementById("project").dataset.project);

function fmt(x, digits) { return x === null || x === undefined ? "–" : x.toFixed(digits); }

function ago(iso) {
  if (!iso) return "–";
  const min = Math.round((Date.now() - Date.parse(iso)) / 60000);
  return min < 1 ? "just now" : min < 120 ? `${min} min ago` : `${Math.round(min / 60)} h ago`;
}

function takeBackButton(a) {
  if (!a.pending) return "";
  const b = el("button", { type: "button", class: "link", title: "return this person's queued items to the pool", text: "take back " + a.pending });
  b.onclick = async () => {
    try {
      const r = await api("POST", `/api/admin/projects/${PID}/release`, { pid: a.pid });
      toast(`${r.released} items of ${a.pid} went back to the pool`);
      refresh();
    } catch (e) { toast(e.message, "error"); }
  };
  return b;
}

async function members() {
  const m = await api("GET", `/api/admin/projects/${PID}/members`);
  const ul = document.getElementById("members");
  ul.textContent = "";
  if (!m.members.length) ul.append(el("li", { class: "muted", text: "no members yet" }));
  for (const pid of m.members) ul.append(el("li", {}, el("span", { class: "pid", text: pid })));
}

async function refresh() {
  const s = await api("GET", `/api/admin/projects/${PID}/stats`);
  const g = s.progress;
  document.getElementById("s-progress").textContent = `${g.judgements_regular} / ${g.target}`;
  document.getElementById("s-bar").style.width = (g.target ? 100 * g.judgements_regular / g.target : 0) + "%";
  document.getElementById("s-complete").textContent = `${g.items_complete} / ${g.items}`;
  document.getElementById("s-raw").textContent = pct(s.agreement.raw);
  document.getElementById("s-alpha").textContent = fmt(s.agreement.krippendorff_alpha, 2);
  document.getElementById("s-ac1").textContent = fmt(s.agreement.gwet_ac1, 2);
  document.getElementById("s-flagged").textContent = String(s.flagged.length);
  document.getElementById("s-flagged").classList.toggle("bad", s.flagged.length > 0);
  const tbody = document.querySelector("#people tbody");
  tbody.textContent = "";
  if (!s.annotators.length) tbody.append(el("tr", {}, el("td", { colspan: "11", class: "muted", text: "Nobody has started yet." })));
  for (const a of s.annotators) {
    const gold = a["gold/n"] ? `${pct(a["gold/accuracy"])} of ${a["gold/n"]}` : "–";
    const time = a.median_ms === null ? "–" : (a.median_ms / 1000).toFixed(1) + " s";
    const flags = el("td", { class: a.flags.length ? "flags bad" : "flags" , text: a.flags.length ? "⚑ " + a.flags.join("; ") : "ok" });
    tbody.append(el("tr", { id: "row-" + a.pid }, el("td", { class: "pid", text: a.pid }), el("td", { text: a.note }),
      el("td", { text: String(a.judgements) }), el("td", { text: String(a.pending) }),
      el("td", { text: pct(a["agreement/with_others"]) + (a["agreement/pairs"] ? ` (${a["agreement/pairs"]} pairs)` : "") }),
      el("td", { text: pct(a["agreement/with_majority"]) }), el("td", { text: gold }), el("td", { text: time }),
      el("td", { text: ago(a.last_label), title: a.last_label || "" }), flags,
      el("td", {}, takeBackButton(a))));
  }
  document.getElementById("updated").textContent = "live · updated " + new Date().toLocaleTimeString();
  document.getElementById("agreement-note").hidden = document.getElementById("project").dataset.task === "pairwise";
}

document.addEventListener("DOMContentLoaded", () => {
  refresh();
  members().catch(e => toast(e.message, "error"));
  const mf = document.getElementById("member-form");
  mf.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const r = await api("PUT", `/api/admin/projects/${PID}/members/${encodeURIComponent(mf.pid.value.trim())}`);
      toast(r.added ? `${r.member} is a member now` : `${r.member} was a member already`);
      mf.pid.value = "";
      members();
    } catch (e) { toast(e.message, "error"); }
  });
  const rf = document.getElementById("release-form");
  rf.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const r = await api("POST", `/api/admin/projects/${PID}/release`, { idle_minutes: Number(rf.idle_minutes.value) });
      document.getElementById("release-result").textContent = r.annotators.length
        ? `${r.released} items back in the pool, from ${r.annotators.join(", ")}` : "nobody was idle that long with work queued";
      refresh();
    } catch (e) { toast(e.message, "error"); }
  });
  setInterval(() => { if (!document.hidden) refresh().catch(() => {}); }, 5000);
  const form = document.getElementById("settings-form");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const p = await api("PATCH", `/api/admin/projects/${PID}`, { overlap: Number(form.overlap.value),
        gold_rate: Number(form.gold_rate.value), status: form.status.value, guidelines: form.guidelines.value,
        members_only: form.members_only.value === "true" });
      document.getElementById("who-may").textContent = p.members_only ? "Only the members below get work from this project."
        : "Every annotator may work on this project.";
      document.getElementById("k").textContent = p.overlap;
      document.getElementById("status-label").textContent = p.status;
      document.getElementById("settings-saved").textContent = "saved ✓";
      refresh();
    } catch (e) { toast(e.message, "error"); }
  });
});
