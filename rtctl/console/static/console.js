// rtctl console: plain JavaScript, no build step, no dependencies.
"use strict";
(() => {
  const TOKEN = document.querySelector('meta[name="rtctl-token"]').content;
  const MAX_ROWS = 500; // the live log keeps the newest entries only, so a busy app cannot freeze the tab
  const DATA_LIMIT = 10240; // Pusher's limit for one event's data, in bytes
  const CHANNEL_RE = /^[-a-zA-Z0-9_=@,.;]+$/;
  const $ = (id) => document.getElementById(id);

  // --- talking to the console ---------------------------------------------------------------

  async function call(path, body) {
    const init = { headers: { "X-Rtctl-Token": TOKEN } };
    if (body !== undefined) {
      init.method = "POST";
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      return { ok: false, status: 0, data: { error: { message: "the console is not answering (was it stopped?)" } } };
    }
    let data = null;
    try { data = await response.json(); } catch (error) { data = { error: { message: `HTTP ${response.status}` } }; }
    return { ok: response.ok, status: response.status, data };
  }

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    if (props) for (const [key, value] of Object.entries(props)) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    }
    for (const child of children) if (child != null) node.append(child);
    return node;
  }

  function facts(dl, pairs) {
    dl.replaceChildren(...pairs.flatMap(([name, value]) => [el("dt", { text: name }), el("dd", { text: value == null ? "—" : String(value) })]));
  }

  function errorText(data) {
    const error = (data && data.error) || {};
    return (error.message || "failed") + (error.hint ? `\nhint: ${error.hint}` : "");
  }

  // --- views ---------------------------------------------------------------------------------

  const views = ["overview", "channels", "log", "creator", "explainer"];
  function show() {
    const name = views.includes(location.hash.slice(1)) ? location.hash.slice(1) : "overview";
    for (const view of views) $(`view-${view}`).hidden = view !== name;
    for (const link of document.querySelectorAll("nav a")) link.classList.toggle("active", link.dataset.view === name);
    if (name === "channels") refreshChannels();
    if (name === "overview") drawCharts();
  }
  window.addEventListener("hashchange", show);

  // --- Overview ------------------------------------------------------------------------------

  let overview = null;
  let serverDown = null; // null until known
  let bannerTimer = null;

  function banner(text, recovered) {
    const node = $("banner");
    clearTimeout(bannerTimer);
    node.textContent = text;
    node.classList.toggle("recovered", !!recovered);
    node.hidden = !text;
    if (recovered) bannerTimer = setTimeout(() => { node.hidden = true; }, 8000);
  }

  async function refreshOverview() {
    const result = await call("/api/overview");
    if (!result.ok) {
      setState(true, errorText(result.data));
      return;
    }
    overview = result.data;
    const o = overview;
    $("provider").textContent = o.provider === "pusher" ? `Pusher (${o.cluster})` : "Soketi";
    facts($("app-facts"), [["Provider", o.provider], ["App id", o.app_id], ["Key", o.key], ["Encrypted channels", o.encryption ? "master key set" : "no master key"]]);
    facts($("endpoint-facts"), [["WebSocket", o.endpoints.websocket], ["HTTP API", o.endpoints.http_api], ["Metrics", o.endpoints.metrics || "none"], ["Webhooks", webhooksText(o.webhooks)]]);
    const health = o.health;
    const routes = health ? Object.entries(health.routes) : [["health routes", o.provider === "pusher" ? "none on Pusher" : "not sampled yet"]];
    const socket = o.connection.connected ? `connected (socket ${o.connection.socket_id})` : `not connected${o.connection.error ? ": " + o.connection.error : ""}`;
    facts($("health-facts"), [...routes, ["Console socket", socket], ["Memory", health && health.memory_percent != null ? `${health.memory_percent.toFixed(1)} %` : "—"]]);
    const healthy = health ? health.healthy : o.connection.connected;
    $("nodes").tBodies[0].replaceChildren(...o.nodes.map((node) => nodeRow(node, healthy)));
    const down = health ? !health.answering || !o.connection.connected : !o.connection.connected;
    setState(down, o.connection.error || (health && !health.answering ? health.routes["/"] : "the server does not answer"));
    renderWatching(o.connection.channels);
    if (!$("view-overview").hidden) drawCharts();
  }

  function webhooksText(w) {
    if (!w || !w.configured) return "none configured";
    if (!w.url) return `sent to ${w.targets.join(", ")}: not received here`;
    if (w.receiving) return `receiving at ${w.url} · ${w.deliveries} verified, ${w.rejections} refused`;
    return `not receiving at ${w.url}: ${w.error}`;
  }

  const count = (n) => (n == null ? "—" : n.toLocaleString("en"));
  function nodeRow(node, fallback) { // one server behind the endpoint: a node, the front door, the bus
    const ok = node.healthy == null ? fallback : node.healthy;
    const messages = node.messages_in == null ? "—" : `${count(node.messages_in)} in · ${count(node.messages_out)} out`;
    return el("tr", { "data-node": node.name, "data-kind": node.kind },
      el("td", { text: node.name }), el("td", { class: "mono", text: node.address }),
      el("td", null, el("span", { class: `badge ${ok ? "up" : "down"}`, text: ok ? "healthy" : "down", title: node.evidence || "" }),
        ok || !node.evidence ? null : el("div", { class: "note", text: node.evidence })),
      el("td", { class: "num", text: count(node.connections) }), el("td", { class: "num", text: messages }));
  }

  function setState(down, reason) {
    const node = $("server-state");
    node.className = `state ${down ? "down" : "up"}`;
    node.textContent = down ? "server down" : "connected";
    if (down && serverDown !== true) banner(`The server is unreachable: ${reason}. The console keeps retrying.`);
    if (!down && serverDown === true) banner("The server is back: the console reconnected and resubscribed.", true);
    serverDown = down;
  }

  function drawCharts() {
    const series = overview ? overview.series : [];
    const note = !overview ? "" : overview.provider === "pusher" ? "Pusher has no metrics endpoint: no chart." :
      !overview.endpoints.metrics ? "Metrics are off (SOKETI_METRICS_ENABLED=false): no chart." : "";
    $("series-note").textContent = note;
    const last = series.length ? series[series.length - 1] : {};
    $("now-connections").textContent = last.connections == null ? "" : `now ${last.connections}`;
    $("now-messages").textContent = last.messages_per_second == null ? "" : `now ${last.messages_per_second.toFixed(1)}/s`;
    chart($("chart-connections"), series, "connections", "#3856d6");
    chart($("chart-messages"), series, "messages_per_second", "#16794a");
  }

  function niceMax(value) { // four gridlines with round steps: 1, 2, 2.5, 5 x 10^k
    const step = Math.max(value, 4) / 4;
    const power = 10 ** Math.floor(Math.log10(step));
    for (const nice of [1, 2, 2.5, 5, 10]) if (nice * power >= step) return 4 * nice * power;
    return 40 * power;
  }

  function chart(canvas, series, field, colour) {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 560, height = canvas.clientHeight || 180;
    if (canvas.width !== width * ratio) { canvas.width = width * ratio; canvas.height = height * ratio; }
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    const left = 44, right = 8, top = 8, bottom = 20;
    const now = Date.now() / 1000, span = 300;
    const values = series.map((p) => p[field]).filter((v) => v != null);
    const max = niceMax(Math.max(0, ...values));
    g.font = "11px system-ui, sans-serif";
    g.fillStyle = "#667085";
    g.strokeStyle = "#e3e6eb";
    g.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = top + (height - top - bottom) * (i / 4);
      g.beginPath(); g.moveTo(left, y); g.lineTo(width - right, y); g.stroke();
      const label = max * (1 - i / 4);
      g.fillText(Number.isInteger(label) ? String(label) : label.toFixed(1), 4, y + 4);
    }
    for (const [seconds, label] of [[300, "-5 min"], [150, "-2.5 min"], [0, "now"]]) {
      const x = left + (width - left - right) * (1 - seconds / span);
      g.fillText(label, Math.min(x, width - right - 24), height - 5);
    }
    if (!values.length) return;
    g.strokeStyle = colour;
    g.lineWidth = 2;
    g.beginPath();
    let drawing = false;
    for (const point of series) {
      const value = point[field];
      const x = left + (width - left - right) * (1 - (now - point.time) / span);
      if (value == null || x < left) { drawing = false; continue; }
      const y = top + (height - top - bottom) * (1 - value / max);
      if (drawing) g.lineTo(x, y); else g.moveTo(x, y);
      drawing = true;
    }
    g.stroke();
  }

  // --- Channels ------------------------------------------------------------------------------

  async function refreshChannels() {
    if ($("view-channels").hidden) return;
    const result = await call("/api/channels");
    if (!result.ok) { $("channels-summary").textContent = errorText(result.data); return; }
    const data = result.data;
    $("channels-summary").textContent = `${data.total} occupied channel${data.total === 1 ? "" : "s"}` + (data.listed < data.total ? ` (first ${data.listed} shown)` : "");
    $("channels").tBodies[0].replaceChildren(...data.channels.map((row) => {
      const members = row.members ? Object.entries(row.members).map(([id, info]) => info ? `${id} ${JSON.stringify(info)}` : id)
        : (row.users || []);
      const watching = row.name in data.watching;
      return el("tr", { "data-channel": row.name },
        el("td", { class: "mono", text: row.name }),
        el("td", { text: row.kind }),
        el("td", { text: row.subscription_count == null ? "—" : String(row.subscription_count) }),
        el("td", { text: row.user_count == null ? "—" : String(row.user_count) }),
        el("td", { class: "mono members", text: row.error ? row.error : members.join(", ") }),
        el("td", null, watching ? el("span", { class: "note", text: "watching" }) :
          el("button", { type: "button", class: "small", text: "Watch", onclick: () => watch(row.name) })));
    }));
  }

  // --- Live log ------------------------------------------------------------------------------

  const buffer = []; // the newest MAX_ROWS entries, oldest first
  let pending = []; // received, not yet on screen
  let droppedHere = 0; // dropped by this page's bound
  let droppedThere = 0; // missed because the page fell behind the console's own buffer
  let paused = false;
  let frame = 0;

  function receive(entries) {
    for (const entry of entries) pending.push(entry);
    if (pending.length > MAX_ROWS) {
      droppedHere += pending.length - MAX_ROWS;
      pending = pending.slice(-MAX_ROWS);
    }
    if (paused) counts(); else schedule();
  }

  // A lone entry is drawn at the next frame; in a flood (more than BUSY rows per draw) the log is
  // redrawn ten times a second instead of sixty: nobody reads faster, and the page stays usable.
  const BUSY = 20;
  let lastBatch = 0;
  function schedule() {
    if (paused || frame) return;
    if (lastBatch > BUSY) frame = setTimeout(() => requestAnimationFrame(flush), 100);
    else frame = requestAnimationFrame(flush);
  }

  function filters() {
    return { channel: $("filter-channel").value.trim(), event: $("filter-event").value.trim() };
  }

  function matches(entry, filter) {
    if (filter.channel && !(entry.channel || "").includes(filter.channel)) return false;
    if (filter.event && !(entry.event || "").includes(filter.event)) return false;
    return true;
  }

  function flush() {
    frame = 0;
    lastBatch = pending.length;
    if (paused || !pending.length) return;
    const batch = pending;
    pending = [];
    for (const entry of batch) buffer.push(entry);
    if (buffer.length > MAX_ROWS) {
      droppedHere += buffer.length - MAX_ROWS;
      buffer.splice(0, buffer.length - MAX_ROWS);
    }
    const body = $("log-rows");
    const rows = document.createDocumentFragment();
    const filter = filters();
    const first = Math.max(0, batch.length - MAX_ROWS); // older ones would be removed at once
    for (let i = batch.length - 1; i >= first; i--) if (matches(batch[i], filter)) rows.append(row(batch[i]));
    body.prepend(rows);
    while (body.childElementCount > MAX_ROWS) body.lastElementChild.remove();
    counts();
  }

  function rebuild() {
    const body = $("log-rows");
    const rows = document.createDocumentFragment();
    const filter = filters();
    for (let i = buffer.length - 1; i >= 0; i--) if (matches(buffer[i], filter)) rows.append(row(buffer[i]));
    body.replaceChildren(rows);
    counts();
  }

  function counts() {
    const shown = $("log-rows").childElementCount;
    $("log-counts").textContent = `${shown} shown · ${buffer.length} kept (newest ${MAX_ROWS})` + (paused ? ` · paused, ${pending.length} waiting` : "");
    const notes = [];
    if (droppedHere) notes.push(`${droppedHere} older entries dropped to keep this page responsive (it keeps the newest ${MAX_ROWS})`);
    if (droppedThere) notes.push(`${droppedThere} entries skipped: this page fell behind the console's buffer`);
    $("dropped").hidden = !notes.length;
    $("dropped").textContent = notes.join(" · ");
  }

  const two = (n) => (n < 10 ? "0" : "") + n;
  function clock(seconds) { // toLocaleTimeString costs far more per row than this
    const date = new Date(seconds * 1000);
    const ms = date.getMilliseconds();
    return `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}.${ms < 10 ? "00" : ms < 100 ? "0" : ""}${ms}`;
  }

  function summary(entry) {
    if (entry.kind === "event" || entry.kind === "sent" || entry.kind === "webhook") {
      const text = typeof entry.data === "string" ? entry.data : JSON.stringify(entry.data);
      const from = entry.user_id ? `(from ${entry.user_id}) ` : "";
      const mark = entry.decrypted ? "[decrypted] " : "";
      const valid = entry.kind === "webhook" && entry.valid === false ? `refused: ${entry.error || "did not verify"} · ` : "";
      return valid + mark + from + (text.length > 600 ? text.slice(0, 600) + "…" : text);
    }
    return (entry.text || "") + (entry.hint ? `\nhint: ${entry.hint}` : "");
  }

  const entries = new WeakMap(); // row -> its entry, for the Copy button (one listener for all)
  function row(entry) {
    const tr = el("div", { class: `entry kind-row-${entry.kind}`, "data-seq": String(entry.seq) },
      el("span", { class: "time", text: clock(entry.time) }),
      el("span", null, el("span", { class: `kind kind-${entry.kind}`, text: entry.kind })),
      el("span", { class: "mono channel", text: entry.channel || "" }),
      el("span", { class: "mono event", text: entry.event || "" }),
      el("span", { class: "data", text: summary(entry) }),
      el("span", null, el("button", { type: "button", class: "small copy", text: "Copy", title: "copy this entry as JSON" })));
    entries.set(tr, entry);
    return tr;
  }

  $("log-rows").addEventListener("click", (event) => {
    const button = event.target.closest("button.copy");
    if (button) copy(entries.get(button.closest(".entry")), button);
  });

  async function copy(entry, button) {
    const text = JSON.stringify(entry, null, 2);
    try {
      await navigator.clipboard.writeText(text);
    } catch (error) { // no clipboard permission: the old way
      const area = el("textarea", { readonly: "" });
      area.value = text;
      document.body.append(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = "Copy"; }, 1200);
  }

  function connectStream() {
    const source = new EventSource(`/api/stream?token=${encodeURIComponent(TOKEN)}`);
    source.addEventListener("entries", (message) => receive(JSON.parse(message.data)));
    source.addEventListener("dropped", (message) => { droppedThere += Number(message.data); counts(); });
    source.onerror = () => { if (source.readyState === EventSource.CLOSED) setTimeout(connectStream, 2000); };
  }

  $("pause").addEventListener("click", () => {
    paused = !paused;
    $("pause").textContent = paused ? "Resume" : "Pause";
    if (!paused) schedule();
    counts();
  });
  $("clear").addEventListener("click", () => { buffer.length = 0; pending = []; droppedHere = 0; droppedThere = 0; rebuild(); });
  for (const id of ["filter-channel", "filter-event"]) $(id).addEventListener("input", rebuild);

  async function watch(channel) {
    $("watch-error").textContent = "";
    const result = await call("/api/watch", { channel });
    if (!result.ok) { $("watch-error").textContent = errorText(result.data); return false; }
    renderWatching(result.data.watching);
    return true;
  }

  function renderWatching(channels) {
    $("watching").replaceChildren(...Object.entries(channels).map(([name, info]) =>
      el("span", { class: `chip ${info.status}`, title: info.error || info.status, "data-channel": name }, name,
        el("button", { type: "button", title: "stop watching", text: "×", onclick: async () => {
          const result = await call("/api/unwatch", { channel: name });
          if (result.ok) renderWatching(result.data.watching);
        } }))));
  }

  $("watch-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const channel = $("watch-channel").value.trim();
    if (!channel) { $("watch-error").textContent = "name a channel to watch"; return; }
    if (await watch(channel)) $("watch-channel").value = "";
  });

  // --- Event Creator -------------------------------------------------------------------------

  function bytes(text) { return new TextEncoder().encode(text).length; }

  function creatorProblem(channels, name, data) {
    if (!channels.length || channels.some((c) => !c)) return "Channels: name at least one channel; separate channels with single commas.";
    if (channels.length > 100) return `Channels: ${channels.length} channels in one trigger; the limit is 100.`;
    for (const c of channels) {
      if (c.length > 164) return `Channels: ${c} is ${c.length} characters; Pusher allows 164.`;
      if (!CHANNEL_RE.test(c)) return `Channels: ${JSON.stringify(c)} contains characters Pusher refuses (use letters, digits and - _ = @ , . ;).`;
    }
    if (channels.length > 1 && channels.some((c) => c.startsWith("private-encrypted-"))) return "Channels: an encrypted channel must be triggered on its own.";
    if (!name) return "Event name: name the event, e.g. chat_message.";
    if (name.length > 200) return `Event name: ${name.length} characters; the limit is 200.`;
    if (name.startsWith("pusher:") || name.startsWith("pusher_internal:")) return "Event name: pusher: and pusher_internal: are reserved.";
    try { JSON.parse(data); } catch (error) { return `Data is not JSON: ${error.message}`; }
    const size = bytes(data.trim());
    if (size > DATA_LIMIT) return `Data is ${size} bytes; Pusher's limit is ${DATA_LIMIT}.`;
    return null;
  }

  function showSize() {
    const size = bytes($("creator-data").value.trim());
    $("creator-size").textContent = `${size} of ${DATA_LIMIT} bytes`;
  }
  $("creator-data").addEventListener("input", showSize);

  $("creator-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("creator-error").textContent = "";
    $("creator-result").textContent = "";
    const spec = $("creator-channels").value;
    const channels = spec.split(",").map((c) => c.trim());
    const name = $("creator-event").value.trim();
    const data = $("creator-data").value;
    const problem = creatorProblem(channels, name, data);
    if (problem) { $("creator-error").textContent = problem; return; } // nothing is sent
    $("creator-send").disabled = true;
    const result = await call("/api/emit", { channels: spec, event: name, data });
    $("creator-send").disabled = false;
    if (!result.ok) { $("creator-error").textContent = errorText(result.data); return; }
    $("creator-result").textContent = `Sent ${name} to ${channels.join(", ")}: the server answered ${JSON.stringify(result.data.response)}`;
  });

  // --- Signature explainer -------------------------------------------------------------------

  for (const tab of document.querySelectorAll(".subtab")) {
    tab.addEventListener("click", () => {
      for (const other of document.querySelectorAll(".subtab")) other.classList.toggle("active", other === tab);
      for (const form of document.querySelectorAll(".subform")) form.hidden = form.id !== tab.dataset.form;
      $("explain-result").hidden = true;
      $("explain-error").textContent = "";
    });
  }

  async function explain(form, path) {
    $("explain-error").textContent = "";
    const body = {};
    for (const [key, value] of new FormData(form)) if (String(value).trim() !== "") body[key] = key === "body" ? String(value) : String(value).trim();
    const result = await call(path, body);
    if (!result.ok) { $("explain-result").hidden = true; $("explain-error").textContent = errorText(result.data); return; }
    const x = result.data;
    $("explain-verdict").textContent = x.verifies ? "✓ verifies" : "✗ does not verify";
    $("explain-verdict").className = `verdict ${x.verifies ? "good" : "bad"}`;
    $("explain-string").textContent = JSON.stringify(x.string_to_sign);
    $("explain-expected").textContent = x.expected;
    $("explain-received").textContent = x.received;
    const other = x.signed_string != null && x.signed_string !== x.string_to_sign;
    $("explain-signed-label").hidden = !other;
    $("explain-signed").parentElement.hidden = !other;
    $("explain-signed").textContent = other ? JSON.stringify(x.signed_string) : "";
    $("explain-findings").replaceChildren(...x.findings.map((f) =>
      el("li", { class: f.blocking ? "blocking" : "info" }, el("strong", { text: `${f.part}: ` }), f.message)));
    $("explain-result").hidden = false;
    $("explain-result").scrollIntoView({ block: "nearest" });
  }
  $("auth-form").addEventListener("submit", (event) => { event.preventDefault(); explain(event.target, "/api/verify/auth"); });
  $("api-form").addEventListener("submit", (event) => { event.preventDefault(); explain(event.target, "/api/verify/api"); });

  // --- start ---------------------------------------------------------------------------------

  show();
  showSize();
  connectStream();
  refreshOverview();
  setInterval(refreshOverview, 2000);
  setInterval(refreshChannels, 3000);
})();
