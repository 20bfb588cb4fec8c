// The console's scripts: live figures on the overview (polling /ui/api/overview) and bar
// charts drawn as SVG from the console's JSON. No libraries, no inline code (the page's
// Content-Security-Policy allows scripts from /ui/static only). Text is set with textContent.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const COLOURS = ["--chart-1", "--chart-2", "--chart-3"];

function colour(i) {
  const name = COLOURS[i % COLOURS.length];
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function node(tag, attrs, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

function formatted(value, unit) {
  const money = value >= 1 ? value.toFixed(2) : String(Number(value.toPrecision(3)));
  const n = unit === "$" ? money : Math.round(value).toLocaleString("en");
  return unit === "$" ? "$" + n : n + (unit ? " " + unit : "");
}

// Horizontal bars: [{label, value, series}] -> an SVG in `container`.
function bars(container, items, unit) {
  container.replaceChildren();
  if (!items.length) {
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = "Nothing to chart yet.";
    container.append(p);
    return;
  }
  const labelW = 440, barW = 480, rowH = 24, width = labelW + barW + 120;
  const max = Math.max(...items.map((d) => d.value), 1e-12);
  const svg = node("svg", { viewBox: `0 0 ${width} ${items.length * rowH + 8}`, width });
  items.forEach((d, i) => {
    const y = i * rowH + 4;
    const w = Math.max(1, (d.value / max) * barW);
    svg.append(node("text", { x: labelW - 8, y: y + 15, "text-anchor": "end" }, d.label));
    const rect = node("rect", { x: labelW, y, width: w, height: rowH - 6, fill: colour(d.series || 0) });
    rect.append(node("title", {}, `${d.label}: ${formatted(d.value, unit)}`));
    svg.append(rect);
    svg.append(node("text", { x: labelW + w + 6, y: y + 15 }, formatted(d.value, unit)));
  });
  container.append(svg);
}

function usageCharts(data) {
  const tokens = document.getElementById("usage-chart");
  if (tokens) {
    bars(
      tokens,
      data.rows.map((r) => ({
        label: (r.tenant ? r.tenant + " · " : "") + r.model,
        value: r.prompt_tokens + r.completion_tokens,
      })),
      "tokens",
    );
  }
  const cost = document.getElementById("cost-chart");
  if (cost) {
    const items = [];
    for (const [model, costs] of Object.entries(data.hosted_cost_usd)) {
      for (const c of costs) items.push({ label: `${model}: ${c.provider}/${c.api_model}`, value: c.usd, series: 1 });
    }
    if (data.self_hosted_usd !== null) {
      items.push({ label: "this deployment", value: data.self_hosted_usd, series: 2 });
    }
    bars(cost, items, "$");
  }
}

function loadUsage() {
  const el = document.getElementById("usage-chart");
  if (!el) return;
  fetch(el.dataset.source, { credentials: "same-origin" })
    .then((r) => (r.ok ? r.json() : Promise.reject(new Error(r.status))))
    .then(usageCharts)
    .catch(() => { el.textContent = "The chart's figures could not be read."; });
}

function planChart() {
  const el = document.getElementById("plan-chart");
  if (!el) return;
  const items = JSON.parse(el.dataset.bars).map((d) => ({ label: d.label, value: d.value }));
  bars(el, items, "$");
}

function benchCharts() {
  for (const el of document.querySelectorAll("[data-levels]")) {
    const field = el.dataset.field;
    const items = JSON.parse(el.dataset.levels).map((d) => ({ label: d.load, value: d[field] }));
    bars(el, items, el.dataset.unit);
  }
}

function pollOverview() {
  const table = document.getElementById("overview");
  if (!table) return;
  const body = table.tBodies[0];
  const fields = ["ready", "starting", "ejected", "draining", "down", "queued", "inflight",
    "at_zero", "tokens_per_s", "error_rate", "ttft"];
  const dash = (v) => (v === null || v === undefined ? "–" : String(v));
  const shown = (m, f) => {
    if (f === "at_zero") return m.at_zero ? "yes" : "no";
    if (f === "tokens_per_s") return m.tokens_per_s.toFixed(1);
    if (f === "error_rate") return (100 * m.error_rate).toFixed(1) + "%";
    if (f === "ttft") return `${dash(m.ttft_p50_ms)} / ${dash(m.ttft_p95_ms)}`;
    return String(m[f]);
  };
  async function tick() {
    try {
      const r = await fetch(table.dataset.poll, { credentials: "same-origin" });
      if (r.status === 401) { window.location.assign("/ui/login"); return; }
      if (!r.ok) return;
      const data = await r.json();
      for (const m of data.models) {
        let row = Array.from(body.rows).find((tr) => tr.dataset.model === m.model);
        if (!row) {
          row = body.insertRow();
          row.dataset.model = m.model;
          const th = document.createElement("th");
          th.scope = "row";
          th.textContent = m.model;
          row.append(th);
          for (const f of fields) { const td = row.insertCell(); td.dataset.field = f; }
        }
        for (const f of fields) {
          const cell = row.querySelector(`[data-field="${f}"]`);
          const text = shown(m, f);
          if (cell.textContent !== text) cell.textContent = text;
        }
      }
      document.getElementById("updated").textContent = new Date(data.ts * 1000).toISOString();
      table.dataset.polled = String(Number(table.dataset.polled || 0) + 1);
    } catch (e) {
      // The gateway is restarting or unreachable: try again on the next tick.
    }
  }
  tick();
  setInterval(tick, 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  pollOverview();
  loadUsage();
  planChart();
  benchCharts();
});
