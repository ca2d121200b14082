// crossrank's compare and evaluation page. No build step, no library: the DOM is made with
// el(), text always as text (never parsed as HTML), and every request goes to this proxy,
// by URLs relative to the page (so a path prefix in front of the proxy keeps working).
"use strict";

const SNIPPET = 280;        // characters of a document shown before "more"
const TITLE = 200;          // characters of a title
const DEBOUNCE_MS = 300;    // the window slider waits this long after the last move
const API = "../";          // /_crossrank/ from /_crossrank/ui/
const ROOT = "../../";      // the proxy's root, where OpenSearch's API is
const state = {
  policies: [],             // GET /_crossrank/policies, in the proxy's order
  ready: null,              // a promise: the policies have been read (or failed to be)
  judged: null,             // {qid, text, judgments} of the query opened from a report
  report: null,             // the loaded eval or tune report
  windowTouched: false,     // the K slider was moved: send ?rerank_window=
  sequence: 0,              // the latest search; older answers are dropped
  abort: null,              // cancels the requests of the search in flight
  baseline: null,           // {key, answer} of the last baseline arm, reused when only K moves
  timer: 0,
};

const $ = (id) => document.getElementById(id);
const own = (object, key) => object !== null && typeof object === "object" && Object.hasOwn(object, key);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function showError(message) {
  $("error").textContent = message || "";
  $("error").hidden = !message;
}

function announce(message) {
  $("status").textContent = message;
}

// What an OpenSearch-shaped error says: its root cause's type and reason.
function errorMessage(status, data, text) {
  const error = data && data.error;
  if (error && typeof error === "object") {
    const cause = (Array.isArray(error.root_cause) && error.root_cause[0]) || error;
    return `${status} ${cause.type || error.type || "error"}: ${cause.reason || error.reason || ""}`;
  }
  if (typeof error === "string") return `${status}: ${error}`;
  return `${status}: ${(text || "").slice(0, 300) || "no body"}`;
}

async function call(method, path, body, signal) {
  const began = performance.now();
  const result = { status: 0, ok: false, data: null, headers: new Headers(), ms: 0 };
  try {
    const response = await fetch(path, {
      method, credentials: "same-origin", signal,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    Object.assign(result, { status: response.status, ok: response.ok, headers: response.headers });
    try { result.data = JSON.parse(text); } catch (_) { /* not JSON: shown as text */ }
    if (!response.ok || result.data === null || typeof result.data !== "object") {
      result.ok = false;
      result.message = errorMessage(response.status, result.data, text);
    }
  } catch (exc) {
    if (exc.name === "AbortError") throw exc;
    result.message = `the proxy did not answer: ${exc.message || exc}`;
  }
  result.ms = performance.now() - began;
  return result;
}

// ---- policies ----------------------------------------------------------------------------

// fnmatch's patterns, as the proxy matches them: * any run, ? one character, [...] a class.
function patternRegExp(pattern) {
  let out = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "*") out += ".*";
    else if (c === "?") out += ".";
    else if (c === "[" && pattern.indexOf("]", i + 2) > i) {
      const end = pattern.indexOf("]", i + 2);
      let body = pattern.slice(i + 1, end).replace(/\\/g, "\\\\");
      if (body.startsWith("!")) body = "^" + body.slice(1);
      out += `[${body}]`;
      i = end;
    } else out += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${out}$`);
}

function targetNames(index) {
  return index.split(",").map((s) => s.trim()).filter(Boolean);
}

// The proxy's choice: the first policy that matches every target index.
function policyFor(index) {
  const names = targetNames(index);
  if (names.length === 0) return null;
  return state.policies.find((p) => names.every(
    (name) => (p.indices || []).some((pattern) => patternRegExp(pattern).test(name)))) || null;
}

async function loadPolicies() {
  try {
    const answer = await call("GET", `${API}policies`);
    if (!answer.ok) throw new Error(answer.message);
    state.policies = Array.isArray(answer.data.policies) ? answer.data.policies : [];
  } catch (exc) {
    showError(`could not list the policies: ${exc.message}`);
    return;
  }
  const names = [...new Set(state.policies.flatMap((p) => p.indices || []))].sort();
  $("indices").replaceChildren(...names.map((name) => el("option", { value: name })));
  if (!$("index").value) {
    const first = state.policies.find((p) => p.enabled && (p.indices || []).some((i) => !/[*?[]/.test(i)));
    if (first) $("index").value = first.indices.find((i) => !/[*?[]/.test(i));
  }
  showPolicy();
}

function showPolicy() {
  const policy = policyFor($("index").value);
  $("policy-name").textContent = policy ? `[${policy.name}]` : "(none matches this index)";
  $("policy").textContent = policy ? JSON.stringify(policy, null, 2) : "";
  const slider = $("window");
  slider.max = String(policy ? policy.max_window : 200);
  if (!state.windowTouched) slider.value = String((policy && policy.window) || slider.value);
  showWindow();
}

function showWindow() {
  const used = $("window").dataset.used;
  $("window-value").textContent = state.windowTouched ? $("window").value
    : `policy default${used ? ` (${used})` : ""}`;
  $("window-reset").hidden = !state.windowTouched;
}

// ---- compare -----------------------------------------------------------------------------

function requestBody(policy) {
  const dsl = $("dsl").value.trim();
  let body;
  if (dsl) {
    try { body = JSON.parse(dsl); } catch (exc) { throw new Error(`the query DSL is not JSON: ${exc.message}`); }
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      throw new Error("the query DSL must be a JSON object (a _search request body)");
    }
  } else {
    const text = $("query").value.trim();
    if (!text) throw new Error("type a query, or give a query DSL body");
    body = { query: { multi_match: policy ? { query: text, fields: policy.text_fields }
                                          : { query: text, lenient: true } } };
  }
  const size = Number.parseInt($("size").value, 10);
  if (body.size === undefined && Number.isFinite(size)) body.size = size;
  const ext = own(body, "ext") && typeof body.ext === "object" ? body.ext : {};
  const mine = own(ext, "crossrank") && typeof ext.crossrank === "object" ? ext.crossrank : {};
  body.ext = { ...ext, crossrank: { ...mine, explain: true } };
  return body;
}

const hitKey = (hit) => `${hit._index}\u0000${hit._id}`;

function sourceText(hit, fields) {
  const source = hit._source;
  if (source === null || typeof source !== "object") return { title: "", text: "(no _source)" };
  const value = (name) => name.split(".").reduce((v, k) => (own(v, k) ? v[k] : undefined), source);
  const texts = fields.map(value).filter((v) => v !== undefined && v !== null)
    .map((v) => (typeof v === "string" ? v : JSON.stringify(v)));
  if (texts.length === 0) return { title: "", text: JSON.stringify(source) };
  if (texts.length === 1) return { title: "", text: texts[0] };
  return { title: texts[0], text: texts.slice(1).join(" ") };
}

function snippet(text, id) {
  if (text.length <= SNIPPET) return el("p", { class: "text", text });
  const body = el("span", { text: text.slice(0, SNIPPET) + "…" });
  const toggle = el("button", { type: "button", class: "link", "aria-expanded": "false",
                                "aria-label": `show all of ${id}`, text: "more" });
  toggle.addEventListener("click", () => {
    const open = toggle.getAttribute("aria-expanded") === "true";
    body.textContent = open ? text.slice(0, SNIPPET) + "…" : text;
    toggle.setAttribute("aria-expanded", String(!open));
    toggle.setAttribute("aria-label", `${open ? "show all" : "shorten"} of ${id}`);
    toggle.textContent = open ? "more" : "less";
  });
  return el("p", { class: "text" }, body, " ", toggle);
}

function judgment(id) {
  const judgments = state.judged && state.judged.judgments;
  if (!judgments) return null;
  if (!own(judgments, id)) return el("span", { class: "badge unjudged", text: "unjudged" });
  const grade = judgments[id];
  return grade > 0 ? el("span", { class: "badge relevant", text: `relevant (${grade})` })
    : el("span", { class: "badge nonrelevant", text: "judged non-relevant" });
}

function fmt(value, digits = 4) {
  return typeof value === "number" && Number.isFinite(value) ? value.toFixed(digits) : "–";
}

// A glyph for the eye, words for a screen reader.
function badge(kind, glyph, words) {
  return el("span", { class: `move ${kind}`, title: words },
    el("span", { "aria-hidden": "true", text: glyph }), el("span", { class: "sr-only", text: words }));
}

function moveBadge(from, to) {
  if (from === undefined || from === null) return badge("same", "new", "not in the first stage's page");
  const delta = from - to;
  if (delta > 0) return badge("up", `▲ ${delta}`, `up ${delta} from ${from}`);
  if (delta < 0) return badge("down", `▼ ${-delta}`, `down ${-delta} from ${from}`);
  return badge("same", "=", "same rank");
}

function hitItem(hit, rank, fields, arm, otherRanks) {
  if (hit === null || typeof hit !== "object") {
    return el("li", { class: "hit" }, el("span", { class: "rank", text: String(rank) }),
              el("p", { class: "text", text: JSON.stringify(hit) }));
  }
  const { title, text } = sourceText(hit, fields);
  const explain = own(hit, "_crossrank") ? hit._crossrank : {};
  const scores = [];
  let move;
  if (arm === "rerank") {
    // reranked: the first-stage rank the proxy explains; otherwise (not reranked) the hit's
    // rank in the baseline's page, if it is there
    const first = explain.first_stage_rank ?? otherRanks.get(hitKey(hit));
    if (own(hit, "_crossrank")) {
      scores.push(`first stage ${fmt(explain.first_stage_score)} (#${first ?? "–"})`,
                  `reranker ${fmt(explain.rerank_score)}`);
    }
    scores.push(`score ${fmt(hit._score)}`);
    if (explain.signals) scores.push(`bm25 ${fmt(explain.signals.bm25)}`, `knn ${fmt(explain.signals.knn)}`);
    move = moveBadge(first, rank);
  } else {
    scores.push(`score ${fmt(hit._score)}`);
    const to = otherRanks.get(hitKey(hit));
    move = to === undefined ? badge("same", "not in the reranked page", "not in the reranked page")
      : badge("same", `→ #${to}`, `rank ${to} when reranked`);
  }
  const shownTitle = title.length > TITLE ? title.slice(0, TITLE) + "…" : title;
  const many = targetNames($("index").value).length > 1 || /[*?[]/.test($("index").value);
  return el("li", { class: "hit", "data-id": hit._id, "data-index": hit._index },
    el("span", { class: "rank", text: String(rank) }),
    el("div", { class: "body" },
      el("div", {}, shownTitle ? el("span", { class: "title", title, text: shownTitle }) : null, " ",
         el("span", { class: "id", text: many ? `${hit._index}/${hit._id}` : hit._id }), move,
         judgment(hit._id)),
      snippet(text, hit._id),
      el("div", { class: "scores", text: scores.join(" · ") })));
}

function metaList(target, answer) {
  const h = answer.headers;
  const items = [["http", "HTTP", String(answer.status || "–")],
                 ["status", "status", h.get("x-crossrank-status")], ["arm", "arm", h.get("x-crossrank-arm")],
                 ["reason", "reason", h.get("x-crossrank-reason")], ["window", "window", h.get("x-crossrank-window")],
                 ["hybrid", "hybrid", h.get("x-crossrank-hybrid")],
                 ["round-trip", "round trip", `${answer.ms.toFixed(0)} ms`]];
  // Server-Timing: name;dur=N entries (a quoted desc may hold commas: only dur is read)
  for (const match of (h.get("server-timing") || "").matchAll(/(?:^|,)\s*([\w.-]+)((?:\s*;\s*[\w-]+(?:=(?:"[^"]*"|[^;,]*))?)*)/g)) {
    const dur = /;\s*dur=([\d.]+)/.exec(match[2]);
    if (dur) items.push([`timing-${match[1]}`, match[1], `${Number(dur[1]).toFixed(1)} ms`]);
  }
  const data = answer.data || {};
  const total = data.hits && data.hits.total;
  if (typeof total === "number") items.push(["total", "total", String(total)]);
  else if (total && typeof total === "object") {
    items.push(["total", "total", `${total.value}${total.relation === "gte" ? "+" : ""}`]);
  }
  if (data._shards && data._shards.failed > 0) {
    items.push(["shards-failed", "shards failed", `${data._shards.failed} of ${data._shards.total}`]);
  }
  if (data.timed_out === true) items.push(["timed-out", "timed out", "true"]);
  target.replaceChildren(...items.filter(([, , v]) => v).map(([key, label, v]) =>
    el("div", { "data-key": key }, el("dt", { text: label }), el("dd", { text: v }))));
}

function hitsOf(answer) {
  const hits = answer.ok && answer.data && answer.data.hits && answer.data.hits.hits;
  return Array.isArray(hits) ? hits : [];
}

function renderArm(arm, answer, fields, otherRanks, from) {
  metaList($(`${arm}-meta`), answer);
  const error = $(`${arm}-error`);
  error.textContent = answer.ok ? "" : answer.message;
  error.hidden = answer.ok;
  $(`${arm}-hits`).replaceChildren(...hitsOf(answer).map((hit, i) =>
    hitItem(hit, from + i + 1, fields, arm, otherRanks)));
  $(`${arm}-hits`).setAttribute("start", String(from + 1));
}

function ranksOf(answer, from) {
  return new Map(hitsOf(answer).filter((h) => h && typeof h === "object")
    .map((hit, i) => [hitKey(hit), from + i + 1]));
}

function setBusy(busy) {
  for (const arm of ["baseline", "rerank"]) $(`arm-${arm}`).setAttribute("aria-busy", String(busy));
}

// onlyWindow: the slider moved; the baseline answer of the same request is reused.
async function runCompare({ onlyWindow = false } = {}) {
  showError("");
  const names = targetNames($("index").value);
  if (names.length === 0) { showError("pick an index"); return; }
  if (names.some((name) => name.startsWith("_"))) {
    showError("name the indices (an index name cannot start with '_'; _all is not a search the proxy reranks)");
    return;
  }
  const index = names.join(",");
  showPolicy();
  const policy = policyFor(index);
  let body;
  try { body = requestBody(policy); } catch (exc) { showError(exc.message); return; }
  if (state.judged && ($("query").value.trim() !== state.judged.text.trim() || !$("dsl").value.trim() !== !state.judged.dsl)) {
    state.judged = null;  // another query: the report's judgments are not about it
    showJudged();
  }
  if (state.abort) state.abort.abort();
  const abort = new AbortController();
  state.abort = abort;
  const sequence = ++state.sequence;
  const path = `${ROOT}${names.map(encodeURIComponent).join(",")}/_search`;
  const rerankParams = new URLSearchParams({ rerank: "true" });
  if (state.windowTouched) rerankParams.set("rerank_window", $("window").value);
  const key = JSON.stringify([path, body]);
  setBusy(true);
  try {
    const reuse = onlyWindow && state.baseline && state.baseline.key === key;
    const [baseline, reranked] = await Promise.all([
      reuse ? state.baseline.answer : call("POST", `${path}?rerank=false`, body, abort.signal),
      call("POST", `${path}?${rerankParams}`, body, abort.signal)]);
    if (sequence !== state.sequence) return;  // a newer search is on its way
    state.baseline = { key, answer: baseline };
    const from = Number(body.from) || 0;
    const first = hitsOf(reranked).find((h) => h && typeof h === "object" && h._source);
    const fields = policy ? policy.text_fields : Object.keys((first && first._source) || {});
    renderArm("baseline", baseline, fields, ranksOf(reranked, from), from);
    renderArm("rerank", reranked, fields, ranksOf(baseline, from), from);
    delete $("window").dataset.used;
    const used = reranked.headers.get("x-crossrank-window");
    if (used) {
      $("window").dataset.used = used;
      if (!state.windowTouched) $("window").value = used;
    }
    showWindow();
    if (!baseline.ok && !reranked.ok) showError(reranked.message);
    announce(`baseline ${hitsOf(baseline).length} hits, reranked ${hitsOf(reranked).length} hits, ` +
             `status ${reranked.headers.get("x-crossrank-status") || reranked.status}`);
  } catch (exc) {
    if (exc.name === "AbortError") return;
    showError(`the answer could not be shown: ${exc.message}`);
  } finally {
    if (sequence === state.sequence) {
      setBusy(false);
      document.body.dataset.searches = String(sequence);  // for the browser tests: answered
    }
  }
}

function showJudged() {
  const note = $("judged-note");
  note.hidden = !state.judged;
  note.textContent = state.judged
    ? `Query ${state.judged.qid} from the report: ${Object.keys(state.judged.judgments).length} judged documents marked.`
    : "";
}

// ---- evaluation report -------------------------------------------------------------------

// A table cell: a node, text, or a number (n(value, digits) for other than 4 digits).
const n = (value, digits = 4) => ({ value, digits });

function cell(value) {
  if (value instanceof Node) return el("td", {}, value);
  if (typeof value === "number") value = n(value, Number.isInteger(value) ? 0 : 4);
  if (value && typeof value === "object" && "digits" in value) {
    return el("td", { class: "num", text: fmt(value.value, value.digits) });
  }
  return el("td", { text: String(value ?? "–") });
}

function table(headers, rows, rowClass = () => null) {
  return el("div", { class: "table-wrap" }, el("table", {},
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, rows.map((row, i) => el("tr", { class: rowClass(i) }, row.map(cell))))));
}

// Quality (y) against latency (x), one point per run; the runs of one group joined in order.
function plot(allPoints, xLabel, yLabel) {
  const points = allPoints.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  if (points.length === 0) return el("p", { class: "hint", text: "nothing to plot" });
  const W = 640, H = 360, L = 64, R = 20, T = 20, B = 48;
  const svgNS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${yLabel} against ${xLabel}, one point per run: ` +
                   points.map((p) => `${p.label} ${p.y.toFixed(4)} at ${p.x.toFixed(1)}`).join("; "));
  const add = (tag, attrs, text) => {
    const node = document.createElementNS(svgNS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    svg.append(node);
    return node;
  };
  const span = (values) => {
    let lo = Math.min(...values), hi = Math.max(...values);
    if (!(hi > lo)) { const d = Math.abs(lo) * 0.05 || 0.5; lo -= d; hi += d; }
    const pad = (hi - lo) * 0.08;
    return [lo - pad, hi + pad];
  };
  const [x0, x1] = span(points.map((p) => p.x)), [y0, y1] = span(points.map((p) => p.y));
  const px = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const py = (y) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
  add("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#5b6473" });
  add("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#5b6473" });
  for (let i = 0; i <= 4; i++) {
    const x = x0 + ((x1 - x0) * i) / 4, y = y0 + ((y1 - y0) * i) / 4;
    add("text", { x: px(x), y: H - B + 16, "text-anchor": "middle" }, x.toFixed(x1 - x0 > 20 ? 0 : 1));
    add("text", { x: L - 6, y: py(y) + 4, "text-anchor": "end" }, y.toFixed(3));
  }
  add("text", { x: (L + W - R) / 2, y: H - 8, "text-anchor": "middle" }, xLabel);
  add("text", { x: 14, y: (T + H - B) / 2, "text-anchor": "middle",
                transform: `rotate(-90 14 ${(T + H - B) / 2})` }, yLabel);
  const colours = ["#1a5fb4", "#c64600", "#1c7c3c", "#813d9c", "#986a44", "#b3261e"];
  const groups = [...new Set(points.map((p) => p.group))];
  groups.forEach((group, g) => {
    const line = points.filter((p) => p.group === group).sort((a, b) => a.order - b.order);
    const colour = colours[g % colours.length];
    if (line.length > 1) {
      add("polyline", { points: line.map((p) => `${px(p.x)},${py(p.y)}`).join(" "),
                        fill: "none", stroke: colour, "stroke-width": 1.5 });
    }
    for (const p of line) {
      const dot = add("circle", { cx: px(p.x), cy: py(p.y), r: 4.5, fill: colour, "data-key": p.label });
      const title = document.createElementNS(svgNS, "title");
      title.textContent = `${p.label}: ${yLabel} ${p.y.toFixed(4)}, ${xLabel} ${p.x.toFixed(1)}`;
      dot.append(title);
      const right = px(p.x) > W * 0.7;  // near the right edge: the label goes to the left
      add("text", { x: px(p.x) + (right ? -7 : 7), y: py(p.y) - 7,
                    "text-anchor": right ? "end" : "start" }, p.label);
    }
  });
  return el("div", { class: "plot" }, svg);
}

function renderEval(report) {
  const metrics = Array.isArray(report.metrics) ? report.metrics : Object.keys(report.results[0]?.metrics || {});
  const primary = metrics[0];
  const ds = report.dataset || {};
  const latency = (r) => r.latency || {};
  const out = [el("h3", { text: `${ds.name || "dataset"}: ${ds.queries ?? "?"} queries, ${ds.judgments ?? "?"} judgments` }),
               el("p", { class: "hint" }, `made ${report.created_at || ""} by `,
                  el("code", { text: report.command || "crossrank eval" }))];
  out.push(el("h4", { text: "Arms" }), table(
    ["run", "arm", "window", ...metrics, "p50 ms", "p95 ms", "outcomes"],
    report.results.map((r) => [r.key, r.arm, r.window ?? "–", ...metrics.map((m) => (r.metrics || {})[m]),
                               latency(r).queries ? n(latency(r).p50_ms, 1) : "–",
                               latency(r).queries ? n(latency(r).p95_ms, 1) : "–",
                               Object.entries(r.statuses || {}).map(([k, v]) => `${k} ${v}`).join(", ")])));
  const timed = report.results.filter((r) => latency(r).queries);
  if (timed.length) {
    out.push(el("h4", { text: `${primary} against latency` }),
             plot(timed.map((r) => ({ x: r.latency.p50_ms, y: (r.metrics || {})[primary], label: r.key,
                                      group: r.arm, order: r.window ?? 0 })),
                  "p50 latency (ms)", primary));
  }
  const keys = new Set(report.results.map((r) => r.key));
  const comparisons = (report.comparisons || []).filter((c) => keys.has(c.baseline) && keys.has(c.candidate));
  out.push(el("h4", { text: "Comparisons (paired)" }), table(
    ["baseline", "candidate", "metric", "mean Δ", "wins", "ties", "losses", "p (t-test)", "p (randomisation)"],
    comparisons.map((c) => [c.baseline, c.candidate, c.metric, c.mean_delta, c.wins, c.ties,
                            c.losses, c.p_value_t, c.p_value_randomisation])));
  const pairs = comparisons.filter((c) => c.metric === primary);
  if (pairs.length) out.push(perQuery(report, pairs, primary));
  for (const note of report.notes || []) out.push(el("p", { class: "hint", text: note }));
  $("report").replaceChildren(...out);
}

// The search body the eval sent for this arm and query (its {{query}} filled in), if known.
function armBody(report, armName, text) {
  const arm = ((report.settings || {}).arms || []).find((a) => a.name === armName);
  if (!arm || !arm.query) return null;
  const fill = (value) => (typeof value === "string" ? value.split("{{query}}").join(text)
    : Array.isArray(value) ? value.map(fill)
    : value && typeof value === "object" ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fill(v)]))
    : value);
  return { query: fill(arm.query) };
}

function perQuery(report, pairs, metric) {
  const pick = el("select", { id: "pair" },
    pairs.map((c, i) => el("option", { value: String(i), text: `${c.candidate} against ${c.baseline}` })));
  const order = el("select", { id: "order" },
    el("option", { value: "losses", text: "largest losses first" }),
    el("option", { value: "gains", text: "largest gains first" }));
  const holder = el("div", { class: "queries" });
  const queries = report.queries && typeof report.queries === "object" ? report.queries : {};
  const index = report.settings && report.settings.index;
  const show = () => {
    const pair = pairs[Number(pick.value)];
    const result = (key) => report.results.find((r) => r.key === key);
    const base = result(pair.baseline), cand = result(pair.candidate);
    const a = (base.per_query || {})[metric] || {}, b = (cand.per_query || {})[metric] || {};
    const rows = Object.keys(b).filter((q) => own(a, q))
      .map((q) => ({ q, base: a[q], cand: b[q], delta: b[q] - a[q] }))
      .sort((x, y) => (order.value === "gains" ? y.delta - x.delta : x.delta - y.delta)
                      || x.q.localeCompare(y.q, undefined, { numeric: true }));
    const comparable = !!cand.rerank && !base.rerank && cand.arm.replace(/\+rerank$/, "") === base.arm;
    holder.replaceChildren(...[
      Object.keys(queries).length ? null
        : el("p", { class: "hint", text: "This report has no query texts (written before report format 2): run crossrank eval again to open queries from here." }),
      comparable ? null : el("p", { class: "hint", text: "These two runs are not one arm with and without reranking: a query opens as the candidate's search, both ways." }),
      table(["query", "text", `${pair.baseline}`, `${pair.candidate}`, "Δ"], rows.map((row) => {
        const text = own(queries, row.q) ? String(queries[row.q].text) : "";
        const open = text && index ? el("button", {
          type: "button", class: "query", "data-qid": row.q, "aria-label": `open query ${row.q} in the compare view`,
          onclick: () => openQuery(index, row.q, text, armBody(report, cand.arm, text), cand.window),
        }, row.q) : row.q;
        const delta = el("span", { class: `delta ${row.delta > 0 ? "up" : row.delta < 0 ? "down" : ""}`,
                                   text: (row.delta > 0 ? "+" : "") + fmt(row.delta) });
        return [open, text, row.base, row.cand, delta];
      }))].filter(Boolean));
  };
  pick.addEventListener("change", show);
  order.addEventListener("change", show);
  show();
  return el("section", { "aria-labelledby": "per-query-title" },
    el("h4", { id: "per-query-title", text: `Per query: ${metric}` }),
    el("div", { class: "controls" }, el("label", { class: "field" }, "Comparison", pick),
       el("label", { class: "field" }, "Order", order)),
    el("p", { class: "hint", text: "A query opens in the compare view with the search the eval sent, its judged documents marked." }),
    holder);
}

function renderTune(report) {
  const best = report.recommended && report.recommended.name;
  const out = [el("h3", { text: `Tuning [${report.policy}] on [${report.index}]: ${report.queries} queries, ${report.folds} folds` }),
               el("p", { class: "hint" }, "made by ", el("code", { text: report.command || "crossrank tune" }))];
  out.push(table(["candidate", "policy fields", "nDCG@10", "95% low", "95% high", "ms"],
    report.candidates.map((c) => [c.name + (c.name === best ? " (recommended)" : ""),
                                  JSON.stringify(c.policy_fields), c.ndcg, c.low, c.high,
                                  n(c.latency_ms, 1)]),
    (i) => (report.candidates[i].name === best ? "recommended" : null)));
  out.push(el("h4", { text: "nDCG@10 against latency" }),
           plot(report.candidates.map((c) => ({ x: c.latency_ms, y: c.ndcg, label: c.name,
                                                group: c.name, order: 0 })),
                "latency (ms)", "nDCG@10"));
  if (report.cross_validation) {
    out.push(el("h4", { text: "Cross-validation" }),
             el("pre", { text: JSON.stringify(report.cross_validation, null, 2) }));
  }
  for (const note of report.notes || []) out.push(el("p", { class: "hint", text: note }));
  $("report").replaceChildren(...out);
}

function loadReport(text) {
  $("report").replaceChildren();
  state.report = null;
  let report;
  try { report = JSON.parse(text); } catch (exc) { showError(`the report is not JSON: ${exc.message}`); return; }
  showError("");
  try {
    if (report && Array.isArray(report.results) && report.results.length && Array.isArray(report.comparisons)) {
      renderEval(report);
    } else if (report && Array.isArray(report.candidates) && report.candidates.length) {
      renderTune(report);
    } else {
      showError("this is neither a crossrank eval report (report.json) nor a crossrank tune report (tune.json)");
      return;
    }
    state.report = report;
  } catch (exc) {
    $("report").replaceChildren();
    showError(`the report could not be shown (${exc.message}): is it from this version of crossrank?`);
  }
}

function openQuery(index, qid, text, body, window) {
  const params = new URLSearchParams({ index, q: text, qid });
  if (body) params.set("dsl", JSON.stringify(body));
  if (window) params.set("k", String(window));
  location.hash = `#/compare?${params}`;
}

// ---- views -------------------------------------------------------------------------------

function route() {
  const [view, query] = location.hash.replace(/^#\/?/, "").split("?");
  const evalView = view === "eval";
  const wasEval = !$("eval-view").hidden;
  $("eval-view").hidden = !evalView;
  $("compare-view").hidden = evalView;
  for (const [id, on] of [["nav-eval", evalView], ["nav-compare", !evalView]]) {
    if (on) $(id).setAttribute("aria-current", "page"); else $(id).removeAttribute("aria-current");
  }
  document.title = `crossrank: ${evalView ? "evaluation" : "compare"}`;
  if (evalView) return;
  const params = new URLSearchParams(query || "");
  if (!params.has("q")) return;
  $("index").value = params.get("index") || $("index").value;
  $("query").value = params.get("q");
  $("dsl").value = params.get("dsl") || "";
  $("dsl-box").open = params.has("dsl");
  if (params.has("size")) $("size").value = params.get("size");
  const qid = params.get("qid");
  const queries = (state.report && state.report.queries) || {};
  state.judged = qid && own(queries, qid) && own(queries[qid], "judgments")
    ? { qid, text: params.get("q"), dsl: params.has("dsl"), judgments: queries[qid].judgments } : null;
  showJudged();
  state.windowTouched = params.has("k");
  if (params.has("k")) $("window").value = params.get("k");
  if (wasEval) $("compare-title").focus();
  state.ready.then(() => { showPolicy(); runCompare(); });
}

function start() {
  $("search-form").addEventListener("submit", (event) => { event.preventDefault(); runCompare(); });
  $("index").addEventListener("change", () => { delete $("window").dataset.used; showPolicy(); });
  const slider = $("window");
  slider.addEventListener("input", () => { state.windowTouched = true; showWindow(); });
  slider.addEventListener("change", () => {
    state.windowTouched = true;
    showWindow();
    clearTimeout(state.timer);
    state.timer = setTimeout(() => runCompare({ onlyWindow: true }), DEBOUNCE_MS);
  });
  $("window-reset").addEventListener("click", () => {
    state.windowTouched = false;
    showPolicy();
    runCompare({ onlyWindow: true });
  });
  $("report-file").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (!file) return;
    try { loadReport(await file.text()); } catch (exc) { showError(`could not read ${file.name}: ${exc.message}`); }
  });
  window.addEventListener("hashchange", route);
  state.ready = loadPolicies();
  route();
}

document.addEventListener("DOMContentLoaded", start);
