// The kvmd-rs viewer: the MJPEG stream, and keyboard and mouse over /api/ws, speaking
// the same protocol as the PiKVM web UI (the stream_client cookie, clients_stat, JSON
// input events).
"use strict";
(function () {
  const img = document.getElementById("screen");
  const status = document.getElementById("status");
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  const key = Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => alphabet[b % 62]).join("");
  let clientId = null;

  function readCookie() {
    const m = document.cookie.match(/(?:^|; )stream_client=([^;]*)/);
    if (m) {
      const v = decodeURIComponent(m[1]);
      if (v.startsWith(key + "/")) clientId = v.slice(key.length + 1);
    }
  }

  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/ws");
  function send(type, event) {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ event_type: type, event: event }));
  }
  ws.onopen = function () {
    status.textContent = "connected";
    // dual_final_frames on every engine: the last frame of a change is painted everywhere.
    img.src = "/streamer/stream?key=" + key + "&dual_final_frames=1";
  };
  ws.onclose = function () {
    status.textContent = "disconnected";
    status.dataset.online = "false";
  };
  ws.onmessage = function (m) {
    const ev = JSON.parse(m.data);
    if (ev.event_type !== "streamer" || !ev.event.streamer) return;
    const s = ev.event.streamer;
    readCookie();
    const stat = clientId && s.stream.clients_stat[clientId];
    status.dataset.online = String(s.source.online);
    status.textContent = (s.source.online ? "online" : "no signal") + " · " +
      s.source.resolution.width + "x" + s.source.resolution.height + (stat ? " · " + stat.fps + " fps" : "");
  };

  img.addEventListener("keydown", function (e) {
    e.preventDefault();
    if (!e.repeat) send("key", { key: e.code, state: true });
  });
  img.addEventListener("keyup", function (e) {
    e.preventDefault();
    send("key", { key: e.code, state: false });
  });
  function position(e) {
    const r = img.getBoundingClientRect();
    const x = Math.round(((e.clientX - r.left) / Math.max(r.width, 1)) * 65535 - 32768);
    const y = Math.round(((e.clientY - r.top) / Math.max(r.height, 1)) * 65535 - 32768);
    return { x: Math.max(-32768, Math.min(32767, x)), y: Math.max(-32768, Math.min(32767, y)) };
  }
  img.addEventListener("mousemove", function (e) { send("mouse_move", { to: position(e) }); });
  const buttons = ["left", "middle", "right"];
  img.addEventListener("mousedown", function (e) {
    img.focus();
    if (buttons[e.button]) send("mouse_button", { button: buttons[e.button], state: true });
  });
  img.addEventListener("mouseup", function (e) {
    if (buttons[e.button]) send("mouse_button", { button: buttons[e.button], state: false });
  });
  img.addEventListener("contextmenu", function (e) { e.preventDefault(); });
  img.addEventListener("wheel", function (e) {
    e.preventDefault();
    send("mouse_wheel", { delta: { x: 0, y: e.deltaY < 0 ? 1 : -1 } });
  }, { passive: false });
})();
