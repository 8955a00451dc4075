// The status page: reads the node's JSON API, fills the tables and draws the graphs on <canvas>.
// No libraries; refreshes itself every REFRESH_MS. A Chia node's view is in chia.js.
"use strict";

const REFRESH_MS = 10000;
let period = "last_hour";

const $ = (id) => document.getElementById(id);

function rate(h) {
  if (h === null || h === undefined || !isFinite(h)) return "–";
  const units = ["H/s", "kH/s", "MH/s", "GH/s", "TH/s", "PH/s", "EH/s", "ZH/s"];
  let i = 0;
  while (Math.abs(h) >= 1000 && i < units.length - 1) { h /= 1000; i++; }
  return h.toFixed(h < 10 ? 2 : 1) + " " + units[i];
}

function num(x, digits) {
  if (x === null || x === undefined || !isFinite(x)) return "–";
  if (Math.abs(x) >= 1e6 || (Math.abs(x) < 1e-3 && x !== 0)) return x.toExponential(3);
  return x.toFixed(digits === undefined ? 3 : digits);
}

function duration(s) {
  s = Math.floor(s);
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  if (d) return d + "d " + h + "h";
  if (h) return h + "h " + m + "m";
  return m + "m " + (s % 60) + "s";
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function fillTable(id, rows, columns, emptyText) {
  const body = $(id);
  body.replaceChildren();
  if (!rows.length) {
    const tr = el("tr");
    const td = el("td", emptyText, "empty");
    td.colSpan = columns;
    tr.appendChild(td);
    body.appendChild(tr);
    return;
  }
  for (const cells of rows) {
    const tr = el("tr");
    for (const c of cells) {
      if (c instanceof Node) { const td = el("td"); td.appendChild(c); tr.appendChild(td); }
      else if (typeof c === "object" && c !== null) tr.appendChild(el("td", c.text, c.cls));
      else tr.appendChild(el("td", c));
    }
    body.appendChild(tr);
  }
}

async function getJSON(path) {
  const r = await fetch(path, { cache: "no-store" });
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}

// Draws `series` ({color, points: [[t, v]]}) as lines; returns how many points had values.
function drawGraph(canvas, series, span) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(h * dpr);
  const g = canvas.getContext("2d");
  g.scale(dpr, dpr);
  g.clearRect(0, 0, w, h);
  const now = Date.now() / 1000;
  const left = 64, right = 8, top = 8, bottom = 20;
  let max = 0, count = 0;
  for (const s of series) for (const [, v] of s.points) if (v !== null) { max = Math.max(max, v); count++; }
  const style = getComputedStyle(document.documentElement);
  g.font = "11px system-ui, sans-serif";
  g.fillStyle = style.getPropertyValue("--dim");
  g.strokeStyle = style.getPropertyValue("--line");
  g.lineWidth = 1;
  const top_ = max > 0 ? max * 1.1 : 1;
  for (let i = 0; i <= 4; i++) {
    const y = top + (h - top - bottom) * i / 4;
    g.beginPath(); g.moveTo(left, y); g.lineTo(w - right, y); g.stroke();
    g.fillText(rate(top_ * (1 - i / 4)), 2, y + 4);
  }
  const x = (t) => left + (w - left - right) * (1 - (now - t) / span);
  const y = (v) => top + (h - top - bottom) * (1 - v / top_);
  const label = span <= 3600 ? "1 hour" : span <= 86400 ? "1 day" : "1 week";
  g.fillText(label + " ago", left, h - 5);
  g.fillText("now", w - right - 22, h - 5);
  if (!count) {
    g.fillText("no data yet", left + 10, top + 20);
    return 0;
  }
  // Each bin is a step as wide as its time span, so even a single sample shows.
  const base = y(0);
  for (const s of series) {
    const color = style.getPropertyValue(s.color);
    const pts = s.points.slice().sort((a, b) => a[0] - b[0]);
    let run = [];
    const flush = () => {
      if (!run.length) return;
      g.beginPath();
      g.moveTo(run[0][0], base);
      for (const [px, py] of run) g.lineTo(px, py);
      g.lineTo(run[run.length - 1][0], base);
      g.closePath();
      g.globalAlpha = 0.18;
      g.fillStyle = color;
      g.fill();
      g.globalAlpha = 1;
      g.beginPath();
      run.forEach(([px, py], i) => (i ? g.lineTo(px, py) : g.moveTo(px, py)));
      g.strokeStyle = color;
      g.lineWidth = 2;
      g.stroke();
      run = [];
    };
    for (const [t, v, width] of pts) {
      if (v === null) { flush(); continue; }
      const half = (width || 0) / 2;
      run.push([Math.max(left, x(t - half)), y(v)], [Math.min(w - right, x(t + half)), y(v)]);
    }
    flush();
  }
  return count;
}

const SPANS = { last_hour: 3600, last_day: 86400, last_week: 604800 };

async function refreshGraphs() {
  const [local, dead, pool] = await Promise.all([
    getJSON("/web/graph_data/local_hash_rate/" + period),
    getJSON("/web/graph_data/local_dead_hash_rate/" + period),
    getJSON("/web/graph_data/pool_rates/" + period),
  ]);
  const field = (data, k) => data.map(([t, v, w]) => [t, v === null ? null : (v[k] || 0), w]);
  const plain = (data) => data;
  const span = SPANS[period];
  $("local-graph").dataset.points = drawGraph($("local-graph"), [
    { color: "--local", points: plain(local) },
    { color: "--dead", points: plain(dead) },
  ], span);
  $("pool-graph").dataset.points = drawGraph($("pool-graph"), [
    { color: "--good", points: field(pool, "good") },
    { color: "--orphan", points: field(pool, "orphan") },
    { color: "--doa", points: field(pool, "doa") },
  ], span);
}

// What became of the blocks this node's miners found: accepted ones first, then the rest.
function blocksLine(g) {
  if (!g) return "–";
  return g.accepted + " accepted of " + g.candidates + " found · " + g.sent + " sent, " +
    g.rejected + " rejected, " + (g.dropped_siblings + g.dropped_stale) + " held back (sibling or stale) · " +
    g.submitblock_calls + " submitblock calls";
}

async function refresh() {
  const [local, global, payouts, users, blocks, peers, node] = await Promise.all([
    getJSON("/local_stats"), getJSON("/global_stats"), getJSON("/current_payouts"),
    getJSON("/users"), getJSON("/recent_blocks"), getJSON("/web/peers"), getJSON("/web/node_status"),
  ]);
  $("network").textContent = local.network;
  $("version").textContent = local.version;
  $("local-rate").textContent = rate(local.hashrate);
  $("pool-rate").textContent = rate(global.pool_hash_rate);
  $("net-rate").textContent = rate(global.network_hashrate);
  $("share-diff").textContent = num(global.min_difficulty);
  $("shares").textContent = local.shares.total + " / " + local.pool_shares.total;
  $("stale").textContent = local.shares.orphan + "/" + local.shares.dead + " · " +
    local.pool_shares.orphan + "/" + local.pool_shares.dead;
  $("block-value").textContent = num(local.block_value, 8) + " BTC";
  $("uptime").textContent = duration(local.uptime);

  const b = node.bitcoind;
  const health = $("health");
  if (!b.connected) { health.textContent = "bitcoind unreachable"; health.className = "pill bad"; }
  else if (!b.synced) { health.textContent = "bitcoind syncing " + (b.verification_progress * 100).toFixed(1) + "%"; health.className = "pill warn"; }
  else if (node.work_refused) { health.textContent = "not mining: " + node.work_refused; health.className = "pill warn"; }
  else { health.textContent = "healthy · block " + b.blocks; health.className = "pill ok"; }

  const pay = Object.entries(payouts).sort((a, c) => c[1] - a[1]);
  fillTable("payouts", pay.map(([addr, btc]) => [addr, { text: num(btc, 8), cls: "num" },
    { text: users[addr] === undefined ? "–" : (users[addr] * 100).toFixed(2) + "%", cls: "num" }]),
    3, "no shares yet");

  const miners = Object.entries(local.miner_hash_rates).sort((a, c) => c[1] - a[1]);
  fillTable("miners", miners.map(([name, h]) => [name, { text: rate(h), cls: "num" },
    { text: rate(local.miner_dead_hash_rates[name] || 0), cls: "num" }]), 3, "no miners connected");

  fillTable("blocks", blocks.map((blk) => {
    const a = el("a", blk.hash);
    a.href = "/web/share/" + blk.share;
    const status = blk.accepted === true ? "accepted" : blk.accepted === false ? "rejected" : "pending";
    return [new Date(blk.ts * 1000).toLocaleString(), { text: blk.number ?? "–", cls: "num" }, a, status];
  }), 4, "no blocks found yet");

  fillTable("peers", peers.map((p) => [p.addr, p.incoming ? "incoming" : "outgoing", p.version]),
    3, "no peers connected");

  const rows = [
    ["bitcoind", b.connected ? b.chain + ", " + b.blocks + " blocks / " + b.headers + " headers" : b.error],
    ["Synced", b.connected ? (b.synced ? "yes" : "no (" + (b.verification_progress * 100).toFixed(2) + "%)") : "–"],
    ["Mining on block", node.template.height + " (template " + node.template.age + " s old, " + node.template.transactions + " tx)"],
    ["Share chain", node.share_chain.len + " shares, " + node.share_chain.heads + " heads, " + node.share_chain.verified_heads + " verified"],
    ["Best share", node.share_chain.best || "none"],
    ["Found blocks", blocksLine(local.blocks)],
    ["Worker connections", String(node.worker.connections)],
    ["Peers", String(node.peers)],
  ];
  fillTable("node", rows.map(([k, v]) => [{ text: k, cls: "" }, v]), 2, "");
  $("node").querySelectorAll("tr td:first-child").forEach((td) => { td.style.color = "var(--dim)"; });
}

async function tick() {
  try {
    await Promise.all([refresh(), refreshGraphs()]);
    $("updated").textContent = new Date().toLocaleTimeString();
  } catch (e) {
    const health = $("health");
    health.textContent = "node unreachable";
    health.className = "pill bad";
  }
}

// The node says which share kind it runs; a Chia node gets the Chia view (web/chia.js).
async function start() {
  let kind = null;
  try { kind = await getJSON("/kind"); } catch (e) { /* a node without /kind: Bitcoin */ }
  if (kind && kind.kind === "chia") { startChia(kind); return; }
  $("periods").addEventListener("click", (ev) => {
    const p = ev.target.dataset && ev.target.dataset.period;
    if (!p) return;
    period = p;
    for (const btn of $("periods").querySelectorAll("button")) btn.classList.toggle("on", btn.dataset.period === p);
    refreshGraphs().catch(() => {});
  });
  window.addEventListener("resize", () => refreshGraphs().catch(() => {}));
  tick();
  setInterval(tick, REFRESH_MS);
}

start();
