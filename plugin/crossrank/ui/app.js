// crossrank's compare and evaluation page. No build step, no library: the DOM is made with
// el(), text always as text (never parsed as HTML), and every request goes to this proxy.
"use strict";

const SNIPPET = 280;        // characters of a document shown before "more"
const state = {
  policies: [],             // GET /_crossrank/policies
  judgments: null,          // {doc_id: grade} of the query opened from a report, or null
  judgedQuery: null,        // that query's id
  report: null,             // the loaded eval or tune report
  windowTouched: false,     // the K slider was moved: send ?rerank_window=
  sequence: 0,              // the latest search; older answers are dropped
};

const $ = (id) => document.getElementById(id);

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
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
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

async function call(method, path, body) {
  const began = performance.now();
  let response;
  try {
    response = await fetch(path, {
      method, credentials: "same-origin",
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (exc) {
    return { status: 0, ok: false, data: null, headers: new Headers(),
             ms: performance.now() - began, message: `the proxy did not answer: ${exc}` };
  }
  const text = await response.text();
  let data = null;
  try { data = JSON.parse(text); } catch (_) { /* not JSON: shown as text */ }
  const result = { status: response.status, ok: response.ok, data, headers: response.headers,
                   ms: performance.now() - began };
  if (!response.ok || data === null) result.message = errorMessage(response.status, data, text);
  return result;
}

// ---- policies ----------------------------------------------------------------------------

function globToRegExp(pattern) {
  const escaped = pattern.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*");
  return new RegExp(`^${escaped}$`);
}

function policyFor(index) {
  const names = index.split(",").map((s) => s.trim()).filter(Boolean);
  return state.policies.find((p) => p.indices.some(
    (pattern) => names.some((name) => globToRegExp(pattern).test(name)))) || null;
}

async function loadPolicies() {
  const answer = await call("GET", "/_crossrank/policies");
  if (!answer.ok) {
    showError(`could not list the policies: ${answer.message}`);
    return;
  }
  state.policies = answer.data.policies || [];
  const list = $("indices");
  list.replaceChildren(...[...new Set(state.policies.flatMap((p) => p.indices))].sort()
    .map((name) => el("option", { value: name })));
  if (!$("index").value) {
    const first = state.policies.find((p) => p.enabled && p.indices.some((i) => !i.includes("*")));
    if (first) $("index").value = first.indices.find((i) => !i.includes("*"));
  }
  showPolicy();
}

function showPolicy() {
  const policy = policyFor($("index").value);
  $("policy-name").textContent = policy ? `[${policy.name}]` : "(none matches this index)";
  $("policy").textContent = policy ? JSON.stringify(policy, null, 2) : "";
  const slider = $("window");
  slider.max = String(policy ? policy.max_window : 200);
  if (policy && policy.window && !state.windowTouched) slider.value = String(policy.window);
  showWindow();
}

function showWindow() {
  $("window-value").textContent = state.windowTouched ? $("window").value
    : `policy default${$("window").dataset.used ? ` (${$("window").dataset.used})` : ""}`;
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
    const fields = policy ? policy.text_fields : ["*"];
    body = { query: { multi_match: { query: text, fields } } };
  }
  const size = Number.parseInt($("size").value, 10);
  if (body.size === undefined && Number.isFinite(size)) body.size = size;
  body.ext = { ...(body.ext || {}), crossrank: { ...((body.ext || {}).crossrank || {}), explain: true } };
  return body;
}

function sourceText(hit, fields) {
  const source = hit._source || {};
  const value = (name) => name.split(".").reduce((v, k) => (v && typeof v === "object" ? v[k] : undefined), source);
  const texts = fields.map(value).filter((v) => v !== undefined && v !== null)
    .map((v) => (typeof v === "string" ? v : JSON.stringify(v)));
  if (texts.length === 0) return { title: "", text: JSON.stringify(source) };
  if (texts.length === 1) return { title: "", text: texts[0] };
  return { title: texts[0], text: texts.slice(1).join(" ") };
}

function snippet(text) {
  if (text.length <= SNIPPET) return el("p", { class: "text", text });
  const body = el("span", { text: text.slice(0, SNIPPET) + "…" });
  const toggle = el("button", { type: "button", class: "link", "aria-expanded": "false",
                                text: "more" });
  toggle.addEventListener("click", () => {
    const open = toggle.getAttribute("aria-expanded") === "true";
    body.textContent = open ? text.slice(0, SNIPPET) + "…" : text;
    toggle.setAttribute("aria-expanded", String(!open));
    toggle.textContent = open ? "more" : "less";
  });
  return el("p", { class: "text" }, body, " ", toggle);
}

function judgment(id) {
  if (!state.judgments) return null;
  if (!(id in state.judgments)) return el("span", { class: "badge unjudged", text: "unjudged" });
  const grade = state.judgments[id];
  return grade > 0 ? el("span", { class: "badge relevant", text: `relevant (${grade})` })
    : el("span", { class: "badge nonrelevant", text: "judged non-relevant" });
}

function fmt(value, digits = 4) {
  return typeof value === "number" && Number.isFinite(value) ? value.toFixed(digits) : "–";
}

function moveBadge(from, to) {
  if (from === undefined || from === null) return el("span", { class: "move same", text: "new" });
  const delta = from - to;
  if (delta > 0) return el("span", { class: "move up", title: `up ${delta} from #${from}`,
                                     "aria-label": `up ${delta} from ${from}`, text: `▲ ${delta}` });
  if (delta < 0) return el("span", { class: "move down", title: `down ${-delta} from #${from}`,
                                     "aria-label": `down ${-delta} from ${from}`, text: `▼ ${-delta}` });
  return el("span", { class: "move same", title: "same rank", "aria-label": "same rank", text: "=" });
}

function hitItem(hit, rank, fields, arm, otherRanks) {
  const { title, text } = sourceText(hit, fields);
  const explain = hit._crossrank || {};
  const scores = [];
  let move = null;
  if (arm === "rerank") {
    const first = explain.first_stage_rank;
    scores.push(`first stage ${fmt(explain.first_stage_score)} (#${first ?? "–"})`,
                `reranker ${fmt(explain.rerank_score)}`, `score ${fmt(hit._score)}`);
    if (explain.signals) {
      scores.push(`bm25 ${fmt(explain.signals.bm25)}`, `knn ${fmt(explain.signals.knn)}`);
    }
    move = moveBadge(first, rank);
  } else {
    scores.push(`score ${fmt(hit._score)}`);
    const to = otherRanks.get(hit._id);
    move = to === undefined
      ? el("span", { class: "move same", text: "not in the reranked page" })
      : el("span", { class: "move same", text: `→ #${to}` });
  }
  return el("li", { class: "hit", "data-id": hit._id },
    el("span", { class: "rank", text: String(rank) }),
    el("div", {},
      el("div", {}, title ? el("span", { class: "title", text: title }) : null, " ",
         el("span", { class: "id", text: hit._id }), move, judgment(hit._id)),
      snippet(text),
      el("div", { class: "scores", text: scores.join(" · ") })));
}

function metaList(target, answer) {
  const h = answer.headers;
  const items = [["HTTP", String(answer.status)],
                 ["status", h.get("x-crossrank-status")], ["arm", h.get("x-crossrank-arm")],
                 ["reason", h.get("x-crossrank-reason")], ["window", h.get("x-crossrank-window")],
                 ["hybrid", h.get("x-crossrank-hybrid")],
                 ["round trip", `${answer.ms.toFixed(0)} ms`]];
  for (const part of (h.get("server-timing") || "").split(",")) {
    const [name, ...params] = part.trim().split(";");
    const dur = params.map((p) => p.trim()).find((p) => p.startsWith("dur="));
    if (name && dur) items.push([name, `${Number(dur.slice(4)).toFixed(1)} ms`]);
  }
  const total = answer.data && answer.data.hits && answer.data.hits.total;
  if (total) items.push(["total", `${total.value}${total.relation === "gte" ? "+" : ""}`]);
  target.replaceChildren(...items.filter(([, v]) => v).map(([k, v]) =>
    el("div", { "data-key": k }, el("dt", { text: k }), el("dd", { text: v }))));
}

function renderArm(arm, answer, fields, otherRanks) {
  metaList($(`${arm}-meta`), answer);
  const error = $(`${arm}-error`);
  error.hidden = answer.ok && answer.data !== null;
  error.textContent = error.hidden ? "" : answer.message;
  const hits = (answer.ok && answer.data && answer.data.hits && answer.data.hits.hits) || [];
  const offset = (answer.from || 0) + 1;
  $(`${arm}-hits`).replaceChildren(...hits.map((hit, i) =>
    hitItem(hit, offset + i, fields, arm, otherRanks)));
  $(`${arm}-hits`).setAttribute("start", String(offset));
}

async function runCompare() {
  showError("");
  const index = $("index").value.trim();
  if (!index) { showError("pick an index"); return; }
  const policy = policyFor(index);
  let body;
  try { body = requestBody(policy); } catch (exc) { showError(exc.message); return; }
  const sequence = ++state.sequence;
  const path = `/${encodeURIComponent(index).replace(/%2C/gi, ",")}/_search`;
  const rerankParams = new URLSearchParams({ rerank: "true" });
  if (state.windowTouched) rerankParams.set("rerank_window", $("window").value);
  for (const arm of ["baseline", "rerank"]) $(`arm-${arm}`).setAttribute("aria-busy", "true");
  const [baseline, reranked] = await Promise.all([
    call("POST", `${path}?rerank=false`, body), call("POST", `${path}?${rerankParams}`, body)]);
  if (sequence !== state.sequence) return;  // a newer search is on its way
  baseline.from = reranked.from = body.from || 0;
  const fields = policy ? policy.text_fields : Object.keys(
    ((reranked.data?.hits?.hits || [])[0] || {})._source || {});
  const ranks = (answer) => new Map(((answer.data && answer.data.hits && answer.data.hits.hits) || [])
    .map((hit, i) => [hit._id, (body.from || 0) + i + 1]));
  renderArm("baseline", baseline, fields, ranks(reranked));
  renderArm("rerank", reranked, fields, ranks(baseline));
  const used = reranked.headers.get("x-crossrank-window");
  if (used) {
    $("window").dataset.used = used;
    if (!state.windowTouched) $("window").value = used;
  }
  showWindow();
  if (!baseline.ok && !reranked.ok) showError(reranked.message);
  for (const arm of ["baseline", "rerank"]) $(`arm-${arm}`).setAttribute("aria-busy", "false");
  document.body.dataset.searches = String(sequence);  // for the browser tests: answered
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

// Quality (y) against latency (x), one point per run; the runs of one arm joined by window.
function plot(points, xLabel, yLabel) {
  const W = 640, H = 360, L = 64, R = 20, T = 20, B = 48;
  const svgNS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${yLabel} against ${xLabel}, one point per run`);
  const add = (tag, attrs, text) => {
    const node = document.createElementNS(svgNS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    svg.append(node);
    return node;
  };
  const xs = points.map((p) => p.x), ys = points.map((p) => p.y);
  const span = (values) => {
    let lo = Math.min(...values), hi = Math.max(...values);
    if (!(hi > lo)) { lo -= 0.5 * Math.abs(lo || 1) * 0.1; hi += 0.5 * Math.abs(hi || 1) * 0.1; }
    const pad = (hi - lo) * 0.08;
    return [lo - pad, hi + pad];
  };
  const [x0, x1] = span(xs), [y0, y1] = span(ys);
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
      const dot = add("circle", { cx: px(p.x), cy: py(p.y), r: 4.5, fill: colour,
                                  "data-key": p.label });
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
  const metrics = report.metrics || Object.keys(report.results[0]?.metrics || {});
  const primary = metrics[0];
  const ds = report.dataset || {};
  const out = [el("h3", { text: `${ds.name || "dataset"}: ${ds.queries ?? "?"} queries, ${ds.judgments ?? "?"} judgments` }),
               el("p", { class: "hint" }, `made ${report.created_at || ""} by `,
                  el("code", { text: report.command || "crossrank eval" }))];
  out.push(el("h4", { text: "Arms" }), table(
    ["run", "arm", "window", ...metrics, "p50 ms", "p95 ms", "outcomes"],
    report.results.map((r) => [r.key, r.arm, r.window ?? "–", ...metrics.map((m) => r.metrics[m]),
                               r.latency.queries ? n(r.latency.p50_ms, 1) : "–",
                               r.latency.queries ? n(r.latency.p95_ms, 1) : "–",
                               Object.entries(r.statuses || {}).map(([k, v]) => `${k} ${v}`).join(", ")])));
  const timed = report.results.filter((r) => r.latency.queries);
  if (timed.length) {
    out.push(el("h4", { text: `${primary} against latency` }),
             plot(timed.map((r) => ({ x: r.latency.p50_ms, y: r.metrics[primary], label: r.key,
                                      group: r.arm, order: r.window ?? 0 })),
                  "p50 latency (ms)", primary));
  }
  const comparisons = report.comparisons || [];
  out.push(el("h4", { text: "Comparisons (paired)" }), table(
    ["baseline", "candidate", "metric", "mean Δ", "wins", "ties", "losses", "p (t-test)", "p (randomisation)"],
    comparisons.map((c) => [c.baseline, c.candidate, c.metric, c.mean_delta, c.wins, c.ties,
                            c.losses, c.p_value_t, c.p_value_randomisation])));
  const pairs = comparisons.filter((c) => c.metric === primary);
  if (pairs.length) out.push(perQuery(report, pairs, primary));
  for (const note of report.notes || []) out.push(el("p", { class: "hint", text: note }));
  $("report").replaceChildren(...out);
}

function perQuery(report, pairs, metric) {
  const pick = el("select", { id: "pair", "aria-label": "comparison" },
    pairs.map((c, i) => el("option", { value: String(i), text: `${c.candidate} against ${c.baseline}` })));
  const order = el("select", { id: "order", "aria-label": "order" },
    el("option", { value: "losses", text: "largest losses first" }),
    el("option", { value: "gains", text: "largest gains first" }));
  const holder = el("div", { class: "queries" });
  const queries = report.queries || {};
  const show = () => {
    const pair = pairs[Number(pick.value)];
    const result = (key) => report.results.find((r) => r.key === key);
    const base = result(pair.baseline), cand = result(pair.candidate);
    const a = base.per_query[metric] || {}, b = cand.per_query[metric] || {};
    const rows = Object.keys(b).filter((q) => q in a)
      .map((q) => ({ q, base: a[q], cand: b[q], delta: b[q] - a[q] }))
      .sort((x, y) => (order.value === "gains" ? y.delta - x.delta : x.delta - y.delta)
                      || x.q.localeCompare(y.q, undefined, { numeric: true }));
    const index = report.settings && report.settings.index;
    holder.replaceChildren(...[
      Object.keys(queries).length ? null
        : el("p", { class: "hint", text: "This report has no query texts (written before report format 2): run crossrank eval again to open queries from here." }),
      table(["query", "text", `${pair.baseline}`, `${pair.candidate}`, "Δ"], rows.map((row) => {
        const text = queries[row.q] ? queries[row.q].text : "";
        const open = text && index ? el("button", {
          type: "button", class: "query", "data-qid": row.q,
          onclick: () => openQuery(index, row.q, text, queries[row.q].judgments, cand.window),
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
    el("p", { class: "hint", text: "A query opens in the compare view, its judged documents marked." }),
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
           plot(report.candidates.map((c, i) => ({ x: c.latency_ms, y: c.ndcg, label: c.name,
                                                   group: "candidates", order: c.latency_ms + i * 1e-9 })),
                "latency (ms)", "nDCG@10"));
  if (report.cross_validation) {
    out.push(el("h4", { text: "Cross-validation" }),
             el("pre", { text: JSON.stringify(report.cross_validation, null, 2) }));
  }
  for (const note of report.notes || []) out.push(el("p", { class: "hint", text: note }));
  $("report").replaceChildren(...out);
}

function loadReport(text) {
  let report;
  try { report = JSON.parse(text); } catch (exc) { showError(`the report is not JSON: ${exc.message}`); return; }
  showError("");
  state.report = report;
  if (Array.isArray(report.results) && Array.isArray(report.comparisons)) renderEval(report);
  else if (Array.isArray(report.candidates)) renderTune(report);
  else showError("this is neither a crossrank eval report (report.json) nor a crossrank tune report (tune.json)");
}

function openQuery(index, qid, text, judgments, window) {
  state.judgments = judgments || {};
  state.judgedQuery = qid;
  const params = new URLSearchParams({ index, q: text, qid });
  if (window) params.set("k", String(window));
  location.hash = `#/compare?${params}`;
}

// ---- views -------------------------------------------------------------------------------

function route() {
  const [view, query] = location.hash.replace(/^#\/?/, "").split("?");
  const evalView = view === "eval";
  $("eval-view").hidden = !evalView;
  $("compare-view").hidden = evalView;
  $("nav-eval").toggleAttribute("aria-current", evalView);
  $("nav-compare").toggleAttribute("aria-current", !evalView);
  if (evalView) { $("nav-eval").setAttribute("aria-current", "page"); return; }
  $("nav-compare").setAttribute("aria-current", "page");
  const params = new URLSearchParams(query || "");
  if (!params.has("q")) return;
  $("index").value = params.get("index") || $("index").value;
  $("query").value = params.get("q");
  if (params.has("size")) $("size").value = params.get("size");
  $("dsl").value = "";
  if (params.get("qid") !== state.judgedQuery) { state.judgments = null; state.judgedQuery = null; }
  const note = $("judged-note");
  note.hidden = !state.judgments;
  note.textContent = state.judgments
    ? `Query ${state.judgedQuery} from the report: ${Object.keys(state.judgments).length} judged documents marked.` : "";
  showPolicy();
  if (params.has("k")) { state.windowTouched = true; $("window").value = params.get("k"); showWindow(); }
  runCompare();
}

function start() {
  $("search-form").addEventListener("submit", (event) => { event.preventDefault(); runCompare(); });
  $("index").addEventListener("change", showPolicy);
  const slider = $("window");
  slider.addEventListener("input", () => { state.windowTouched = true; showWindow(); });
  slider.addEventListener("change", () => { state.windowTouched = true; showWindow(); runCompare(); });
  $("report-file").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (file) loadReport(await file.text());
  });
  window.addEventListener("hashchange", route);
  loadPolicies().then(route);
}

document.addEventListener("DOMContentLoaded", start);
