"use strict";
async function loadProjects() {
  const list = await api("GET", "/api/admin/projects");
  const tbody = document.querySelector("#projects tbody");
  tbody.textContent = "";
  if (!list.length) tbody.append(el("tr", {}, el("td", { colspan: "6", class: "muted", text: "No projects yet: create one below." })));
  for (const p of list) {
    const target = p.n_items * p.overlap;
    const fill = el("div");
    fill.style.width = (target ? Math.min(100, 100 * p.judgements / target) : 0) + "%";  // CSSOM: CSP allows it
    const bar = el("div", { class: "progress" }, fill);
    tbody.append(el("tr", {},
      el("td", {}, el("a", { href: "/admin/projects/" + p.id, text: p.name })),
      el("td", { text: p.task_type }), el("td", { text: p.n_items + (p.n_gold ? ` + ${p.n_gold} gold` : "") }),
      el("td", { text: String(p.overlap) }),
      el("td", {}, bar, el("span", { class: "small muted", text: ` ${p.judgements} / ${target}` })),
      el("td", { text: p.status })));
  }
}

async function loadAnnotators() {
  const list = await api("GET", "/api/admin/annotators");
  const tbody = document.querySelector("#annotators tbody");
  tbody.textContent = "";
  for (const a of list) {
    const state = a.disabled ? "disabled" : a.invite_pending ? "invited" : "active";
    const relink = el("button", { type: "button", class: "link", text: "new link" });
    relink.onclick = async () => showInvite(await api("POST", `/api/admin/annotators/${a.pid}/invite`));
    tbody.append(el("tr", {}, el("td", { class: "pid", text: a.pid }), el("td", { text: a.note }),
      el("td", { text: a.group || "" }), el("td", { text: a.role }), el("td", { text: state }), el("td", {}, relink)));
  }
}

function showInvite(res) {
  document.getElementById("invite-result").hidden = false;
  document.getElementById("invite-pid").textContent = res.pid;
  const url = document.getElementById("invite-url");
  url.value = res.invite_url;
  url.select();
  loadAnnotators();
}

function readFile(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(r.result);
    r.onerror = () => reject(new Error("cannot read " + file.name));
    r.readAsText(file);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  loadProjects();
  loadAnnotators();
  const form = document.getElementById("project-form");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const err = document.getElementById("project-error");
    err.hidden = true;
    const body = { name: form.name.value.trim(), task_type: form.task_type.value,
      overlap: Number(form.overlap.value), gold_count: Number(form.gold_count.value),
      gold_rate: Number(form.gold_rate.value), scale: Number(form.scale.value),
      aspects: form.aspects.value.split(",").map(s => s.trim()).filter(Boolean) };
    const source = form.querySelector('input[name="source"]:checked').value;
    try {
      if (source === "path") body.path = form.path.value.trim();
      else {
        const file = form.file.files[0];
        if (!file) throw new Error("choose a JSONL file to upload");
        body.jsonl = await readFile(file);
        body.filename = file.name;
      }
      const p = await api("POST", "/api/admin/projects", body);
      location.href = "/admin/projects/" + p.id;
    } catch (e) { err.textContent = e.message; err.hidden = false; }
  });
  const inv = document.getElementById("invite-form");
  inv.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = { note: inv.note.value.trim(), role: inv.role.value };
    if (inv.group.value.trim()) body.group = inv.group.value.trim();
    try { showInvite(await api("POST", "/api/admin/annotators", body)); inv.reset(); }
    catch (e) { toast(e.message, "error"); }
  });
});
