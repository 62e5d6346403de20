// weir serve's web view: the agents and their actions, live counters, the
// latest runs and, for a run clicked, its tree. Vanilla JavaScript with no
// dependency and no build step; it polls the service's JSON every second
// (fetch, so that it can send the token, which EventSource cannot).
//
// Everything the service sends may hold guest output: it goes into the
// document only as text (text nodes, textContent), never as markup, and
// never into an attribute that loads or runs anything.
"use strict";

(() => {
  const TOKEN_KEY = "weir.token";
  const POLL_MS = 1000;
  const RUNS_SHOWN = 100;

  const view = {
    agents: [],
    selected: null,
    /** Per agent: its counter cells. */
    counterCells: new Map(),
    /** The last runs answer, to redraw only on change. */
    runsText: "",
    /** The runs listed now, by id. */
    runs: new Map(),
    /** Open runs: id -> { row: the detail row, shown: what its tree shows }. */
    open: new Map(),
    busy: false,
  };

  const $ = (id) => document.getElementById(id);

  /** An element of class `cls` holding `children` (nodes, or text). */
  function el(tag, cls, ...children) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  /** A 401 to a request sent with `token` (null: none). */
  class NeedToken extends Error {
    constructor(token) {
      super("this service needs its token");
      this.token = token;
    }
  }

  /** GETs `path` (JSON) with the token, if one was given. */
  async function api(path) {
    const headers = { Accept: "application/json" };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = "Bearer " + token;
    const response = await fetch(path, { headers, cache: "no-store", credentials: "omit" });
    if (response.status === 401) throw new NeedToken(token);
    if (!response.ok) {
      let message = "HTTP " + response.status;
      try {
        message = (await response.json()).error || message;
      } catch (_) {
        // Not JSON: the status says enough.
      }
      throw new Error(message);
    }
    return response.json();
  }

  const agentPath = (name) => "/v1/agents/" + encodeURIComponent(name);

  function setState(text, failed) {
    const state = $("state");
    state.textContent = text;
    state.classList.toggle("error", Boolean(failed));
  }

  // ---- formatting ----

  /** A time of day (local) with milliseconds, from RFC 3339. */
  function clock(timestamp) {
    if (!timestamp) return "";
    const at = new Date(timestamp);
    if (Number.isNaN(at.getTime())) return String(timestamp);
    const pad = (n, w) => String(n).padStart(w, "0");
    return pad(at.getHours(), 2) + ":" + pad(at.getMinutes(), 2) + ":" + pad(at.getSeconds(), 2) +
      "." + pad(at.getMilliseconds(), 3);
  }

  const ms = (value) => (typeof value === "number" ? value.toFixed(value < 10 ? 2 : 0) : "");

  /** A logged value as text: strings as they are, cut strings with what
   * was left out, anything else as indented JSON. */
  function show(value) {
    if (typeof value === "string") return value;
    if (value && typeof value === "object" && typeof value.truncatedString === "string") {
      return value.truncatedString + " … [" + value.omittedChars + " more characters]";
    }
    return JSON.stringify(value, null, 2);
  }

  const badge = (status) => el("span", "badge " + String(status).replace(/[^a-z]/g, ""), status);

  // ---- agents and counters ----

  const COUNTERS = [
    ["events in", (c) => c.events_in],
    ["active", (c) => c.active],
    ["runs ended", (c) => c.runs_ended],
    ["runs failed", (c) => c.runs_failed],
    ["outputs", (c) => c.outputs],
    ["errors", (c) => c.errors],
    ["model calls", (c) => c.model_calls],
    ["tool calls", (c) => c.tool_calls],
    ["tokens", (c) => c.input_tokens + c.output_tokens],
  ];

  async function loadAgents() {
    const answer = await api("/v1/agents");
    view.agents = answer.agents || [];
    const nav = $("agents");
    nav.replaceChildren();
    view.counterCells.clear();
    for (const agent of view.agents) {
      const box = el("div", "agent", el("h2", null, agent.name));
      box.dataset.agent = agent.name;
      if (agent.description) box.append(el("p", null, agent.description));
      const actions = el("ul", "actions");
      for (const action of agent.actions || []) {
        actions.append(el("li", null, el("span", "mono", action.name), " ",
          el("span", "listen", "← " + (action.listen || []).join(", "))));
      }
      box.append(actions);
      const counters = el("div", "counters");
      const cells = [];
      for (const [label] of COUNTERS) {
        const value = el("b", null, "–");
        counters.append(el("div", "counter", value, el("span", null, label)));
        cells.push(value);
      }
      box.append(counters);
      view.counterCells.set(agent.name, cells);
      box.addEventListener("click", () => select(agent.name));
      nav.append(box);
    }
    if (!view.selected || !view.agents.some((a) => a.name === view.selected)) {
      select(view.agents.length ? view.agents[0].name : null);
    }
  }

  function select(name) {
    if (view.selected === name) return;
    view.selected = name;
    for (const box of document.querySelectorAll(".agent")) {
      box.classList.toggle("selected", box.dataset.agent === name);
    }
    view.runsText = "";
    view.open.clear();
    $("runs").tBodies[0].replaceChildren();
    tick();
  }

  async function refreshCounters() {
    await Promise.all(view.agents.map(async (agent) => {
      const answer = await api(agentPath(agent.name) + "/counters");
      const cells = view.counterCells.get(agent.name) || [];
      COUNTERS.forEach(([, of], i) => {
        if (cells[i]) cells[i].textContent = String(of(answer.counters));
      });
    }));
  }

  // ---- runs ----

  function runsQuery() {
    const query = new URLSearchParams({ limit: String(RUNS_SHOWN) });
    const key = $("filter-key").value.trim();
    const type = $("filter-type").value.trim();
    const status = $("filter-status").value;
    if (key) query.set("key", key);
    if (type) query.set("type", type);
    if (status) query.set("status", status);
    return query.toString();
  }

  async function refreshRuns() {
    if (!view.selected) return;
    const answer = await api(agentPath(view.selected) + "/runs?" + runsQuery());
    const text = JSON.stringify(answer);
    if (text === view.runsText) return;
    view.runsText = text;
    $("kept").textContent = answer.kept + " runs kept";
    view.runs = new Map(answer.runs.map((run) => [run.id, run]));
    const body = $("runs").tBodies[0];
    const rows = [];
    for (const run of answer.runs) {
      rows.push(runRow(run));
      const open = view.open.get(run.id);
      if (open) rows.push(open.row);
    }
    body.replaceChildren(...rows);
    $("no-runs").hidden = answer.runs.length > 0;
  }

  function runRow(run) {
    const cell = (cls, ...children) => el("td", cls, ...children);
    const row = el("tr", "run",
      cell("mono", clock(run.started)),
      cell("mono", run.id.length > 14 ? run.id.slice(0, 12) + "…" : run.id),
      cell("cell-key", run.key),
      cell("cell-type mono", run.type || ""),
      cell(null, badge(run.status)),
      cell("num", ms(run.duration_ms)),
      cell("num", run.actions),
      cell("num", run.calls),
      cell("num", run.outputs),
      cell("num", run.errors),
      cell("num", run.input_tokens + run.output_tokens ? run.input_tokens + " / " + run.output_tokens : ""));
    row.dataset.id = run.id;
    row.title = run.id;
    row.classList.toggle("open", view.open.has(run.id));
    row.addEventListener("click", () => toggle(run.id, row));
    return row;
  }

  function toggle(id, row) {
    const open = view.open.get(id);
    if (open) {
      open.row.remove();
      view.open.delete(id);
      row.classList.remove("open");
      return;
    }
    const cell = el("td", null, el("span", "muted", "loading…"));
    cell.colSpan = 11;
    const detail = el("tr", "detail", cell);
    detail.dataset.detail = id;
    row.after(detail);
    row.classList.add("open");
    view.open.set(id, { row: detail, shown: "" });
    refreshTree(id).catch(failed);
  }

  /** Redraws an open run's tree when the run has changed. */
  async function refreshTree(id) {
    const open = view.open.get(id);
    const run = view.runs.get(id);
    if (!open) return;
    const shown = run ? run.status + "/" + run.records : "";
    if (shown && shown === open.shown) return;
    const answer = await api(agentPath(view.selected) + "/runs/" + encodeURIComponent(id) + "/tree");
    open.shown = answer.run.status + "/" + answer.run.records;
    const cell = open.row.cells[0];
    // Keep what the reader opened.
    const opened = new Set([...cell.querySelectorAll("details[open]")].map((d) => d.dataset.path));
    cell.replaceChildren(renderRun(answer));
    for (const details of cell.querySelectorAll("details")) {
      if (opened.has(details.dataset.path)) details.open = true;
    }
  }

  // ---- a run's tree ----

  function renderRun(answer) {
    const run = answer.run;
    const box = el("div", "run-tree");
    box.append(el("div", "node-head",
      el("span", "kind", "run"), el("span", "mono", run.id), el("span", null, "key ", el("b", null, run.key)),
      badge(run.status), run.duration_ms !== undefined ? el("span", "muted", ms(run.duration_ms) + " ms") : null,
      answer.tree && answer.tree.recovered ? el("span", "muted", "re-done after a crash") : null));
    if (run.omitted_records) {
      box.append(el("p", "warnings", run.omitted_records + " records of this run were over its share of the view and not kept"));
    }
    if (!answer.tree) {
      box.append(el("p", "muted", "Its input has not been logged yet."));
    } else {
      box.append(el("ul", "tree", renderEvent(answer.tree.input, "")));
    }
    for (const warning of answer.warnings || []) box.append(el("p", "warnings", warning));
    return box;
  }

  /** A collapsible block of text, identified by `path` across redraws. */
  function block(label, text, path, open) {
    const details = el("details", null, el("summary", null, label), el("pre", null, text));
    details.dataset.path = path;
    if (open) details.open = true;
    return details;
  }

  /** Chat messages as `role: content` lines, else the value as text. */
  function messages(label, value, path) {
    const list = Array.isArray(value) ? value : [value];
    const isMessage = (m) => m && typeof m === "object" && typeof m.role === "string";
    if (!list.every(isMessage)) return block(label, show(value), path, false);
    const details = el("details", null, el("summary", null, label));
    details.dataset.path = path;
    for (const message of list) {
      const pre = el("pre", "message", el("span", "role", message.role + ":"), show(message.content ?? ""));
      details.append(pre);
      const rest = Object.assign({}, message);
      delete rest.role;
      delete rest.content;
      if (Object.keys(rest).length) details.append(el("pre", null, show(rest)));
    }
    return details;
  }

  function renderEvent(node, path) {
    const here = path + "/" + node.event_id;
    const item = el("li", "event");
    const head = el("div", "node-head",
      el("span", "kind", "event"), el("b", "mono", node.event_type), el("span", "mono muted", node.event_id),
      el("span", "muted", clock(node.timestamp)),
      node.observations > 1 ? el("span", "muted", "logged " + node.observations + " times") : null);
    item.append(head);
    if (node.payload !== undefined) {
      const prominent = !path || node.event_type === "_output_event" || node.event_type === "_error_event";
      item.append(block("payload", show(node.payload), here + "#payload", prominent));
    }
    if (node.actions && node.actions.length) {
      item.append(el("ul", null, ...node.actions.map((action) => renderAction(action, here))));
    }
    return item;
  }

  function renderAction(action, path) {
    const here = path + "/" + action.name;
    const item = el("li", "action", el("div", "node-head",
      el("span", "kind", "action"), el("b", "mono", action.name), badge(action.status),
      action.duration_ms !== undefined ? el("span", "muted", ms(action.duration_ms) + " ms") : null));
    if (action.error) item.append(el("div", "error-text", action.error));
    const children = [];
    (action.calls || []).forEach((call, n) => children.push(renderCall(call, here + "/" + n)));
    for (const note of action.notes || []) {
      const kind = note.kind.replace(/^_/, "").replace(/_event$/, "");
      children.push(el("li", "note", el("span", "kind", kind), " ", el("span", "mono", JSON.stringify(note.details))));
    }
    for (const event of action.emitted || []) children.push(renderEvent(event, here));
    if (children.length) item.append(el("ul", null, ...children));
    return item;
  }

  function renderCall(call, path) {
    const tokens = call.input_tokens !== undefined
      ? el("span", "muted", call.input_tokens + " tokens in, " + (call.output_tokens ?? 0) + " out") : null;
    const item = el("li", "call", el("div", "node-head",
      el("span", "kind", call.kind), el("b", "mono", call.name),
      call.model ? el("span", "muted", call.model) : null, badge(call.status),
      call.duration_ms !== undefined ? el("span", "muted", ms(call.duration_ms) + " ms") : null, tokens));
    if (call.error) item.append(el("div", "error-text", call.error));
    const asked = call.kind === "tool" ? "arguments" : call.kind === "llm" ? "prompt" : "request";
    if (call.request !== undefined) item.append(messages(asked, call.request, path + "#request"));
    if (call.reply !== undefined) item.append(messages("reply", call.reply, path + "#reply"));
    return item;
  }

  // ---- the loop ----

  function failed(error) {
    if (error instanceof NeedToken) {
      // A request sent before the token was given says nothing of it.
      if (error.token !== sessionStorage.getItem(TOKEN_KEY)) return;
      $("token-form").hidden = false;
      $("forget-token").hidden = true;
      setState("needs the token", true);
    } else {
      setState("not reachable: " + error.message, true);
    }
  }

  async function tick() {
    if (view.busy) return;
    view.busy = true;
    try {
      if (!view.agents.length) await loadAgents();
      await Promise.all([refreshCounters(), refreshRuns()]);
      await Promise.all([...view.open.keys()].map(refreshTree));
      const at = clock(new Date().toISOString());
      setState(($("live").checked ? "live" : "paused") + " · updated " + at, false);
    } catch (error) {
      failed(error);
    } finally {
      view.busy = false;
    }
  }

  function start() {
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, $("token").value);
      $("token").value = "";
      $("token-form").hidden = true;
      $("forget-token").hidden = false;
      tick();
    });
    $("forget-token").hidden = !sessionStorage.getItem(TOKEN_KEY);
    $("forget-token").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      location.reload();
    });
    let typing = null;
    const refilter = () => {
      clearTimeout(typing);
      typing = setTimeout(() => {
        view.runsText = "";
        tick();
      }, 200);
    };
    $("filters").addEventListener("input", refilter);
    $("filters").addEventListener("submit", (event) => event.preventDefault());
    setInterval(() => {
      if ($("live").checked) tick();
    }, POLL_MS);
    tick();
  }

  start();
})();
