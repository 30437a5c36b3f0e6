"use strict";
document.addEventListener("DOMContentLoaded", async () => {
  const data = await api("GET", "/api/me/data");
  const acc = document.getElementById("account");
  const rows = [["Pseudonymous id", data.account.pid], ["Role", data.account.role],
    ["Group", data.account.group || "—"], ["Password set", data.account.has_password ? "yes" : "no"],
    ["Signed-in sessions", data.account.active_sessions], ["Member since", data.account.created.slice(0, 10)]];
  for (const [k, v] of rows) acc.append(el("dt", { text: k }), el("dd", { text: String(v) }));
  const form = document.getElementById("demo-form");
  for (const [k, v] of Object.entries(data.demographics || {})) if (form[k]) form[k].value = v;
  document.getElementById("n-labels").textContent = "(" + data.judgements.length + ")";
  const tbody = document.querySelector("#labels tbody");
  for (const j of data.judgements.slice(-200).reverse()) {
    const label = j.ratings ? JSON.stringify(j.ratings) : j.tie ? "tie" : (j.choice === 0 ? "A" : "B") + (j.strength ? " (strength " + j.strength + ")" : "");
    tbody.append(el("tr", {}, el("td", { text: j.project }), el("td", { text: j.item_id }),
      el("td", { text: label }), el("td", { text: (j.created || "").slice(0, 16).replace("T", " ") })));
  }
  document.getElementById("logout-everywhere").addEventListener("click", async () => {
    try { await api("POST", "/api/logout/everywhere"); } finally { location.href = "/login"; }
  });
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = {};
    for (const k of ["age_band", "first_language", "region"]) if (form[k].value.trim()) body[k] = form[k].value.trim();
    try { await api("PUT", "/api/me/demographics", { data: body }); toast("Saved", "ok"); }
    catch (e) { toast(e.message, "error"); }
  });
  document.getElementById("demo-clear").onclick = async () => {
    await api("DELETE", "/api/me/demographics");
    form.reset();
    toast("Demographics deleted", "ok");
  };
  document.getElementById("erase").onclick = async () => {
    if (!confirm("Delete your account, all your labels and demographics? This cannot be undone.")) return;
    try { await api("DELETE", "/api/me"); location.href = "/login"; }
    catch (e) { toast(e.message, "error"); }
  };
});
