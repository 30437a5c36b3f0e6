// Sign-in and invite acceptance (no session yet, so no CSRF token: the API checks Origin).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const login = document.getElementById("login-form");
  if (login) login.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const err = document.getElementById("login-error");
    try {
      await api("POST", "/api/login", { pid: login.pid.value.trim(), password: login.password.value });
      // the server already allows only a path here; resolve it once more, in case
      const next = new URL(login.dataset.next || "/", location.origin);
      location.href = next.origin === location.origin ? next.pathname + next.search : "/";
    } catch (e) { err.textContent = e.message; err.hidden = false; }
  });
  const invite = document.getElementById("invite-form");
  if (invite) invite.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const err = document.getElementById("invite-error");
    const body = { token: invite.dataset.token };
    if (invite.password.value) body.password = invite.password.value;
    try {
      const me = await api("POST", "/api/invites/accept", body);
      location.href = me.role === "admin" ? "/admin" : "/projects";
    } catch (e) { err.textContent = e.message; err.hidden = false; }
  });
});
