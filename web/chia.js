// The status page's Chia view: a node running the Chia share kind (`/kind` says "chia") shows
// its signage points, harvesters, shares, PPLNS payouts, found blocks and refusals from the
// `/chia/*` JSON. Uses app.js's helpers ($, el, fillTable, getJSON, num, duration).
"use strict";

const CHIA_SHARES = 30;
const CHIA_SIGNAGE_POINTS = 16;
// Signage points come every few seconds: this view refreshes more often than the Bitcoin one.
const CHIA_REFRESH_MS = 5000;

// A long hex string cut to its start, the whole of it in the tooltip.
function short(hex, n) {
  const span = el("span", hex && hex.length > (n || 16) ? hex.slice(0, n || 16) + "…" : (hex || "–"), "mono");
  if (hex) span.title = hex;
  return span;
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(n)) + " " + units[i];
}

function ago(t) {
  if (!t) return "–";
  return duration(Math.max(0, Date.now() / 1000 - t)) + " ago";
}

function ms(x) {
  return x === null || x === undefined ? "–" : x.toFixed(1) + " ms";
}

async function refreshChia() {
  const [kind, sps, harvesters, shares, payouts, blocks] = await Promise.all([
    getJSON("/kind"), getJSON("/chia/signage_points"), getJSON("/chia/harvesters"),
    getJSON("/chia/shares?limit=" + CHIA_SHARES), getJSON("/chia/payouts"), getJSON("/chia/blocks"),
  ]);
  $("network").textContent = "chia " + kind.network;
  $("version").textContent = kind.version;

  const latest = sps.latest;
  const health = $("health");
  if (!latest) { health.textContent = "waiting for a signage point"; health.className = "pill warn"; }
  else {
    health.textContent = "signage point " + latest.number + " · " + latest.age + " s old";
    health.className = latest.age <= 30 ? "pill ok" : "pill warn";
  }
  $("chia-sp").textContent = latest ? latest.number + " (index " + latest.index + ")" : "–";
  $("chia-sp-age").textContent = latest ? latest.age + " s" : "–";
  $("chia-difficulty").textContent = latest ? String(latest.difficulty) : "–";
  const hs = harvesters.harvesters;
  const plots = hs.reduce((n, h) => n + h.plot_count, 0);
  $("chia-farm").textContent = hs.length + " / " + plots;
  $("chia-chain").textContent = kind.share_chain.shares + " / " + payouts.shares;
  $("chia-uptime").textContent = duration(kind.uptime);

  fillTable("chia-harvesters", hs.map((h) => [
    h.peer,
    { text: String(h.plot_count), cls: "num" },
    { text: bytes(h.plots_size), cls: "num" },
    Object.entries(h.k_sizes).map(([k, n]) => "k" + k + " × " + n).join(", ") || "–",
    { text: ms(h.lookup.median_ms) + " / " + ms(h.lookup.max_ms), cls: "num" },
    { text: String(h.proofs), cls: "num" },
    { text: String(h.shares), cls: "num" },
    { text: h.late_proofs + " / " + h.refused_proofs, cls: "num" },
    ago(h.last_seen),
  ]), 9, "no harvester connected");

  fillTable("chia-shares", shares.shares.map((s) => {
    const a = el("a");
    a.appendChild(short(s.hash));
    a.href = "/chia/share/" + s.hash;
    const from = s.harvester !== null ? "harvester " + s.harvester : s.peer ? "peer " + s.peer.slice(-8) : "–";
    return [
      s.received ? new Date(s.received * 1000).toLocaleTimeString() : "–",
      { text: String(s.height), cls: "num" },
      a,
      short(s.plot_id),
      { text: String(s.proof_of_space.k), cls: "num" },
      { text: String(s.difficulty), cls: "num" },
      { text: s.required_iterations === null ? "–" : String(s.required_iterations), cls: "num" },
      from,
    ];
  }), 8, "no shares yet");

  $("chia-payouts-note").textContent = "Each address's part of the pool reward (7/8 of " +
    num(payouts.block_reward_mojos / 1e12, 3) + " XCH) of a block won now: PPLNS over the last " +
    payouts.shares + " shares (window " + payouts.window + "), weighted by difficulty.";
  fillTable("chia-payouts", payouts.payouts.map((p) => [
    p.address,
    { text: (p.fraction * 100).toFixed(2) + "%", cls: "num" },
    { text: num(p.xch, 6), cls: "num" },
    { text: String(p.difficulty), cls: "num" },
  ]), 4, "no shares yet");

  fillTable("chia-blocks", blocks.blocks.map((b) => [
    new Date(b.time * 1000).toLocaleString(),
    { text: b.height == null ? "—" : String(b.height), cls: "num" },
    b.header_hash ? short(b.header_hash) : "—",
    { text: String(b.signage_point_index), cls: "num" },
    { text: b.required_iters + " / " + b.sp_interval_iters, cls: "num" },
    b.outcome,
  ]), 6, "none yet");

  const refusals = Object.entries(harvesters.counters)
    .filter(([k]) => k !== "proofs" && k !== "shares")
    .sort((a, b) => b[1] - a[1]);
  fillTable("chia-refusals", refusals.map(([k, n]) => [k.replace(/_/g, " "), { text: String(n), cls: "num" }]),
    2, "none");

  const points = sps.signage_points.slice(-CHIA_SIGNAGE_POINTS).reverse();
  fillTable("chia-signage-points", points.map((p) => [
    { text: String(p.number), cls: "num" },
    { text: String(p.index), cls: "num" },
    short(p.challenge_hash),
    short(p.sp_hash),
    new Date(p.time * 1000).toLocaleTimeString(),
    { text: String(p.difficulty), cls: "num" },
  ]), 6, "none yet");
}

async function tickChia() {
  try {
    await refreshChia();
    $("updated").textContent = new Date().toLocaleTimeString();
  } catch (e) {
    const health = $("health");
    health.textContent = "node unreachable";
    health.className = "pill bad";
  }
}

function startChia() {
  $("bitcoin-view").hidden = true;
  $("chia-view").hidden = false;
  const json = document.querySelector("footer a[href='/local_stats']");
  if (json) json.href = "/chia/shares";
  tickChia();
  setInterval(tickChia, CHIA_REFRESH_MS);
}
