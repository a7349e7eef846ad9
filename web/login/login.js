// Logs in with fetch, as PiKVM's page does: POST /api/auth/login without `redirect`, so the
// session cookie is kvmd's HttpOnly, SameSite=Strict one, then goes to the console.
"use strict";
document.getElementById("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = ev.target;
  const message = document.getElementById("message");
  message.textContent = "";
  const body = new URLSearchParams({ user: form.user.value, passwd: form.passwd.value });
  try {
    const r = await fetch("/api/auth/login", { method: "POST", body, credentials: "same-origin" });
    if (r.ok) {
      location.href = "/";
      return;
    }
    const j = await r.json().catch(() => null);
    const why = j && j.result ? `${j.result.error}: ${j.result.error_msg}` : `HTTP ${r.status}`;
    message.textContent = r.status === 403 ? `Wrong user or password (${why})` : why;
  } catch (e) {
    message.textContent = `Cannot reach the server: ${e}`;
  }
});
