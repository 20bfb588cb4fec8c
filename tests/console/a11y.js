// The accessibility audit run in the page by tests/console/browser.py: fields without a
// label, buttons and links without a name, and text below WCAG AA contrast (4.5:1, 3:1 when large)
// against the background it is drawn on. Returns {problems, checked}.
const problems = [];
const visible = (el) => {
  const r = el.getBoundingClientRect();
  const s = getComputedStyle(el);
  return r.width > 0 && r.height > 0 && s.visibility !== "hidden" && s.display !== "none";
};
for (const el of document.querySelectorAll("input, select, textarea")) {
  if (el.type === "hidden") continue;
  const named = (el.labels && el.labels.length) || el.getAttribute("aria-label");
  if (!named) problems.push("no label: " + el.outerHTML.slice(0, 80));
}
for (const el of document.querySelectorAll("button, a[href]")) {
  const name = (el.getAttribute("aria-label") || el.textContent || "").trim();
  if (!name) problems.push("no accessible name: " + el.outerHTML.slice(0, 80));
}
const rgb = (text) => {
  const m = text.match(/rgba?\(([^)]+)\)/);
  if (!m) return null;
  const p = m[1].split(/[ ,\/]+/).filter(Boolean).map(Number);
  return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
};
const lum = (c) => {
  const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
};
const background = (el) => {
  for (let e = el; e; e = e.parentElement) {
    const c = rgb(getComputedStyle(e).backgroundColor);
    if (c && c.a > 0) return c;
  }
  return { r: 255, g: 255, b: 255, a: 1 };
};
let checked = 0;
for (const el of document.querySelectorAll("body *")) {
  const own = Array.from(el.childNodes).some((n) => n.nodeType === 3 && n.textContent.trim());
  if (!own || !visible(el)) continue;
  const style = getComputedStyle(el);
  const svg = el instanceof SVGElement;
  const fg = rgb(svg ? style.fill : style.color);
  if (!fg) continue;
  const bg = background(svg ? el.closest("div") || document.body : el);
  const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
  const ratio = (hi + 0.05) / (lo + 0.05);
  const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
  const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
  checked += 1;
  if (ratio < need) problems.push(`contrast ${ratio.toFixed(2)} < ${need}: ${el.tagName} "${el.textContent.trim().slice(0, 40)}"`);
}
return { problems, checked };
