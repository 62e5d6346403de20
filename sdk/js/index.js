// weir's guest SDK for JavaScript: actions and tools as plain functions, built
// into a WebAssembly component by componentize-qjs (QuickJS) and run sandboxed
// by weir. Types for editors are in index.d.ts; the API is the Python SDK's
// (and so Apache Flink Agents'), in JavaScript's camelCase.
//
// Everything an action reaches outside its own memory goes through weir's host
// functions (the WIT imports in wit/), each allowed by the agent's grants.

import context from "weir:agent/context@0.1.0";
import events from "weir:agent/events@0.1.0";
import fetch from "weir:agent/fetch@0.1.0";
import log from "weir:agent/log@0.1.0";
import memory from "weir:agent/memory@0.1.0";
import model from "weir:agent/model@0.1.0";
import tools from "weir:agent/tools@0.1.0";
import wasiRandom from "wasi:random/random@0.2.12";
import environment from "wasi:cli/environment@0.2.12";

/** The event type that leaves the agent (Flink Agents' OutputEvent). */
export const OUTPUT = "_output_event";

/** Longest stack trace an uncaught exception puts in its error event. */
export const MAX_TRACE_CHARS = 8192;

/** Why an action failed: weir turns it into an error event. */
export class ActionError extends Error {
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.name = "ActionError";
    this.code = code;
    this.detail = message;
  }
}

/**
 * A host call weir did not carry out: code `denied` (not granted), `invalid`
 * (bad arguments), `limit` (a task limit) or `host-failed`. Left uncaught, it
 * fails the action with that code.
 */
export class HostError extends ActionError {
  constructor(code, message) {
    super(code, message);
    this.name = "HostError";
  }
}

// QuickJS's own Math.random state is part of the build-time snapshot, so
// every instance would draw the same numbers. Randomness comes from
// wasi:random instead (recorded and replayed under durable execution), in
// batches: one host call per eight numbers.
let pool = [];
let drawn = 0;

Math.random = function random() {
  if (drawn + 7 > pool.length) {
    pool = wasiRandom.getRandomBytes(64);
    drawn = 0;
  }
  const b = pool;
  const i = drawn;
  drawn += 7;
  // 53 random bits, as a fraction in [0, 1).
  const high = b[i] * 2 ** 21 + b[i + 1] * 2 ** 13 + b[i + 2] * 2 ** 5 + (b[i + 3] >>> 3);
  const low = b[i + 4] * 2 ** 16 + b[i + 5] * 2 ** 8 + b[i + 6];
  return (high * 2 ** 24 + low) / 2 ** 53;
};

/** Web Crypto's random numbers (no keys or digests): what uuid libraries use. */
globalThis.crypto ??= {
  getRandomValues(array) {
    if (!ArrayBuffer.isView(array) || array instanceof Float32Array || array instanceof Float64Array) {
      throw new TypeError("getRandomValues takes an integer typed array");
    }
    if (array.byteLength > 65536) {
      throw new RangeError("getRandomValues fills at most 65536 bytes at a time");
    }
    const bytes = wasiRandom.getRandomBytes(array.byteLength);
    new Uint8Array(array.buffer, array.byteOffset, array.byteLength).set(bytes);
    return array;
  },
  randomUUID() {
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  },
};

/**
 * `process.env`: the environment variables the agent grants (`env = [...]`),
 * read on first use (not at build time, whose snapshot every instance shares).
 */
globalThis.process ??= {};
if (!("env" in globalThis.process)) {
  Object.defineProperty(globalThis.process, "env", {
    configurable: true,
    enumerable: true,
    get() {
      const env = Object.freeze(Object.fromEntries(environment.getEnvironment()));
      Object.defineProperty(this, "env", { value: env, enumerable: true });
      return env;
    },
  });
}

// Calls a host function, turning its error into a HostError. The bindings
// throw an Error whose `payload` is the host-error variant ({tag, val}).
function host(call, ...args) {
  try {
    return call(...args);
  } catch (err) {
    const variant = err instanceof Error ? err.payload : err;
    if (variant && typeof variant === "object" && typeof variant.tag === "string") {
      const code = variant.tag === "failed" ? "host-failed" : variant.tag;
      throw new HostError(code, String(variant.val));
    }
    throw err;
  }
}

// A wrong type handed to a host function would trap inside the bindings
// (the whole task fails with a trap); checked here it is a TypeError with a
// stack that points at the caller.
function text(value, what) {
  if (typeof value !== "string") {
    throw new TypeError(`${what} must be a string, not ${value === null ? "null" : typeof value}`);
  }
  return value;
}

function parseJson(text, what) {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ActionError("bad-payload", `${what} is not JSON: ${e.message}`);
  }
}

/** An event an action handles; `payload` is the decoded JSON value. */
export class Event {
  constructor(wit) {
    this.id = wit.id;
    this.type = wit.eventType;
    this.key = wit.key;
    this.upstreamId = wit.upstreamId ?? null;
    this.attributes = Object.fromEntries(wit.attributes);
    this.raw = wit.payload;
  }

  /** The payload as JavaScript values; a payload that is not JSON fails the action with `bad-payload`. */
  get payload() {
    const value = parseJson(this.raw, "the payload");
    Object.defineProperty(this, "payload", { value });
    return value;
  }
}

/** One scope of the key's memory: short-term (kept across runs) or sensory (this run only). */
export class Memory {
  constructor(scope) {
    this.scope = scope;
  }

  /** The value at a dot-separated `path`, or `fallback` when there is none. */
  get(path, fallback = null) {
    const value = host(memory.get, this.scope, text(path, "a memory path"));
    return value == null ? fallback : JSON.parse(value);
  }

  /** Sets `path` to `value` (anything JSON can hold). */
  set(path, value) {
    host(memory.set, this.scope, text(path, "a memory path"), toJson(value, `the value for \`${path}\``));
  }

  /** Removes `path`; whether it was there. */
  remove(path) {
    return host(memory.remove, this.scope, text(path, "a memory path"));
  }

  /** The names under `path` (the top level by default). */
  fieldNames(path = "") {
    return host(memory.fieldNames, this.scope, text(path, "a memory path"));
  }
}

function toJson(value, what) {
  const text = JSON.stringify(value);
  if (text === undefined) {
    throw new ActionError("invalid", `${what} cannot be written as JSON`);
  }
  return text;
}

function logFields(fields) {
  return Object.entries(fields ?? {}).map(([k, v]) => [k, String(v)]);
}

/** Structured log records, shown in weir's log with the action's name. */
const logger = {
  trace: (message, fields) => log.write("trace", String(message), logFields(fields)),
  debug: (message, fields) => log.write("debug", String(message), logFields(fields)),
  info: (message, fields) => log.write("info", String(message), logFields(fields)),
  warn: (message, fields) => log.write("warn", String(message), logFields(fields)),
  error: (message, fields) => log.write("error", String(message), logFields(fields)),
};

/**
 * What an action can do besides computing: emit events, use memory, read its
 * config, log, call models and tools (Flink Agents' RunnerContext).
 */
export class RunnerContext {
  constructor() {
    this.shortTermMemory = new Memory("short-term");
    this.sensoryMemory = new Memory("sensory");
    this.log = logger;
  }

  /** The key of the event being handled. */
  get key() {
    return context.key();
  }

  /** The name the agent gave this action. */
  get actionName() {
    return context.actionName();
  }

  /** The same for a re-run of this task after a crash: send it with calls that have effects. */
  get idempotencyKey() {
    return context.idempotencyKey();
  }

  /** A config value: the action's `config` first, then the agent's. */
  config(name, fallback = null) {
    const value = context.config(text(name, "a config name"));
    return value == null ? fallback : JSON.parse(value);
  }

  /** The whole merged config as an object. */
  configAll() {
    return JSON.parse(context.configAll());
  }

  /** Emits an event of `type` to the actions listening to it; returns its id. Takes effect only if the action succeeds. */
  sendEvent(type, payload, attributes = {}) {
    const pairs = Object.entries(attributes).map(([k, v]) => [k, String(v)]);
    return host(events.emit, text(type, "an event type"), toJson(payload, "the payload"), pairs);
  }

  /** Emits an output event, which leaves the agent. */
  sendOutput(payload) {
    return this.sendEvent(OUTPUT, payload);
  }

  /** Asks the chat model resource `model` (granted in the manifest). */
  chat(name, messages, { useTools = false, options = null, outputSchema = null } = {}) {
    const request = {
      model: text(name, "a model name"),
      messages: messages.map((m) => ({
        role: text(m.role, "a message's role"),
        content: text(m.content, "a message's content"),
        toolCalls: [],
        toolCallId: m.toolCallId == null ? null : text(m.toolCallId, "a tool call id"),
      })),
      options: options == null ? null : toJson(options, "the options"),
      outputSchema: outputSchema == null ? null : toJson(outputSchema, "the output schema"),
      useTools,
    };
    const reply = host(model.chat, request);
    return {
      content: reply.message.content,
      toolCalls: reply.message.toolCalls.map((c) => ({
        id: c.id,
        name: c.name,
        arguments: JSON.parse(c.arguments || "{}"),
      })),
      finishReason: reply.finishReason,
      inputTokens: reply.usage.inputTokens,
      outputTokens: reply.usage.outputTokens,
      model: reply.model,
    };
  }

  /** Embeds `texts` with the embedding model resource `model`: one vector per text. */
  embed(name, texts) {
    return host(model.embed, text(name, "a model name"), texts.map((t) => text(t, "a text to embed")));
  }

  /** Calls a granted tool with an arguments object; its JSON result. */
  callTool(name, args) {
    return JSON.parse(host(tools.call, text(name, "a tool name"), toJson(args, "the arguments")));
  }

  /** The tools this action may call. */
  availableTools() {
    return host(tools.available).map((t) => ({
      name: t.name,
      description: t.description,
      parameters: JSON.parse(t.parameters),
    }));
  }
}

const ACTIONS = new Map();
const TOOLS = new Map();
const CONTEXT = new RunnerContext();

// QuickJS has no TextEncoder/TextDecoder: UTF-8 by hand, for HTTP bodies.
function utf8Encode(string) {
  const bytes = [];
  for (const char of string) {
    const c = char.codePointAt(0);
    if (c < 0x80) bytes.push(c);
    else if (c < 0x800) bytes.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    else if (c < 0x10000) bytes.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    else bytes.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }
  return new Uint8Array(bytes);
}

// Malformed sequences become U+FFFD, one per maximal bad subpart, as
// TextDecoder does.
function utf8Decode(bytes) {
  const parts = [];
  let points = [];
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i++];
    let c = b;
    if (b >= 0x80) {
      let need = 0;
      let lo = 0x80;
      let hi = 0xbf;
      if (b >= 0xc2 && b <= 0xdf) [need, c] = [1, b & 0x1f];
      else if (b >= 0xe0 && b <= 0xef) {
        [need, c] = [2, b & 0x0f];
        if (b === 0xe0) lo = 0xa0;
        if (b === 0xed) hi = 0x9f;
      } else if (b >= 0xf0 && b <= 0xf4) {
        [need, c] = [3, b & 0x07];
        if (b === 0xf0) lo = 0x90;
        if (b === 0xf4) hi = 0x8f;
      } else need = -1;
      for (; need > 0; need--, lo = 0x80, hi = 0xbf) {
        const next = bytes[i];
        if (next === undefined || next < lo || next > hi) break;
        c = (c << 6) | (next & 0x3f);
        i++;
      }
      if (need !== 0) c = 0xfffd;
    }
    points.push(c);
    if (points.length === 8192) {
      parts.push(String.fromCodePoint(...points));
      points = [];
    }
  }
  parts.push(String.fromCodePoint(...points));
  return parts.join("");
}

/** An HTTP response, read whole: its status, headers ([name, value] pairs) and body. */
export class Response {
  constructor(wit) {
    this.status = wit.status;
    this.headers = wit.headers;
    this.body = wit.body instanceof Uint8Array ? wit.body : Uint8Array.from(wit.body);
  }

  /** The first value of header `name` (any case), or `null`. */
  header(name) {
    const lower = text(name, "a header name").toLowerCase();
    const found = this.headers.find(([key]) => key.toLowerCase() === lower);
    return found ? found[1] : null;
  }

  /** The body as UTF-8 text. */
  text() {
    return utf8Decode(this.body);
  }

  /** The body decoded from JSON; a body that is not JSON throws ActionError `bad-response`. */
  json() {
    try {
      return JSON.parse(this.text());
    } catch (e) {
      throw new ActionError("bad-response", `the response is not JSON: ${e.message}`);
    }
  }
}

/**
 * Outbound HTTP: requests go only to the hosts the agent grants
 * (`http = ["https://api.example.com"]`), carry the task's idempotency key and
 * are recorded under durable execution. Calls block until the whole response
 * is read (other keys run meanwhile). A refused request throws HostError
 * `denied`; a failed one (no connection, a timeout) HostError `host-failed`.
 */
export const http = {
  /** Sends `method url` with `headers` (an object), `body` (a string or Uint8Array) and `timeoutMs`. */
  request(method, url, { headers = {}, body = null, timeoutMs = null } = {}) {
    const pairs = Object.entries(headers).map(([name, value]) => [name, text(value, `header \`${name}\``)]);
    let bytes;
    if (body === null || body === undefined) bytes = new Uint8Array(0);
    else if (typeof body === "string") bytes = utf8Encode(body);
    else if (body instanceof Uint8Array) bytes = body;
    else throw new TypeError("an HTTP body must be a string or a Uint8Array");
    if (timeoutMs !== null && !(Number.isInteger(timeoutMs) && timeoutMs >= 0 && timeoutMs < 2 ** 32)) {
      throw new TypeError("timeoutMs must be a whole number of milliseconds");
    }
    const request = {
      method: text(method, "the method"),
      url: text(url, "the URL"),
      headers: pairs,
      body: bytes,
      timeoutMs,
    };
    return new Response(host(fetch.send, request));
  },

  /** `GET url`. */
  get(url, { headers = {}, timeoutMs = null } = {}) {
    return http.request("GET", url, { headers, timeoutMs });
  },

  /** `POST url` with a JSON body (`json`) or raw `data` (a string or Uint8Array). */
  post(url, { json, data = null, headers = {}, timeoutMs = null } = {}) {
    const all = { ...headers };
    if (json !== undefined) {
      data = JSON.stringify(json);
      if (!Object.keys(all).some((h) => h.toLowerCase() === "content-type")) {
        all["content-type"] = "application/json";
      }
    }
    return http.request("POST", url, { headers: all, body: data, timeoutMs });
  },
};

/**
 * Registers `fn(event, ctx)` as an action, named `options.name` (default: the
 * function's name), described by `options.description`. The agent manifest
 * decides which event types it listens to. Returns `fn`.
 */
export function action(options, fn) {
  if (typeof options === "function") {
    [options, fn] = [{}, options];
  }
  const name = options.name ?? fn.name;
  if (!name) throw new Error("an action needs a name: a named function or { name }");
  if (ACTIONS.has(name)) throw new Error(`two actions are named \`${name}\``);
  ACTIONS.set(name, { fn, description: options.description ?? "" });
  return fn;
}

/**
 * Registers `fn(args)` as a tool models (and actions granted it) may call.
 * `options.parameters` maps each argument to its JSON Schema; an argument
 * without a `default` is required unless `options.required` lists the
 * required ones. weir checks every call's arguments against the schema
 * (additional properties refused) before the tool runs. A tool with
 * `reconcile(args, idempotencyKey)` has external effects: after a crash weir
 * asks it what became of an interrupted call (its result, or `null` if it
 * did not take effect) instead of calling again.
 */
export function tool(options, fn) {
  const name = options.name ?? fn.name;
  if (!name) throw new Error("a tool needs a name: a named function or { name }");
  if (TOOLS.has(name)) throw new Error(`two tools are named \`${name}\``);
  const properties = options.parameters ?? {};
  const required =
    options.required ?? Object.keys(properties).filter((p) => !("default" in properties[p]));
  const schema = { type: "object", properties, required, additionalProperties: false };
  TOOLS.set(name, {
    fn,
    description: options.description ?? "",
    parameters: JSON.stringify(schema),
    reconcile: options.reconcile ?? null,
  });
  return fn;
}

// An error event's code and message for anything an action or tool threw.
function failure(err) {
  if (err instanceof ActionError) return { code: err.code, message: err.detail };
  let text;
  if (err instanceof Error) {
    text = `${err.name}: ${err.message}\n${err.stack ?? ""}`;
  } else {
    text = `uncaught ${typeof err}: ${String(err)}`;
  }
  if (text.length > MAX_TRACE_CHARS) text = "... " + text.slice(-MAX_TRACE_CHARS);
  return { code: "exception", message: text };
}

// Host calls block (other keys run meanwhile), so actions and tools are
// plain functions: a promise they return would never be awaited.
function synchronous(result, name) {
  if (result !== null && typeof result === "object" && typeof result.then === "function") {
    throw new TypeError(`\`${name}\` returned a promise: write it as a plain (not async) function; host calls block`);
  }
  return result;
}

/** The component's `handler` export: dispatches to the registered actions. */
export const handler = {
  actions() {
    return [...ACTIONS].map(([name, a]) => ({ name, description: a.description }));
  },
  handle(name, event) {
    const entry = ACTIONS.get(name);
    if (entry === undefined) {
      throw { code: "unknown-action", message: `this component carries no action \`${name}\`` };
    }
    try {
      synchronous(entry.fn(new Event(event), CONTEXT), name);
    } catch (err) {
      throw failure(err);
    }
  },
};

/** The component's `tool-provider` export: the registered tools. */
export const toolProvider = {
  tools() {
    return [...TOOLS].map(([name, t]) => ({ name, description: t.description, parameters: t.parameters }));
  },
  call(name, args) {
    const entry = TOOLS.get(name);
    if (entry === undefined) throw { code: "unknown-tool", message: `no tool \`${name}\`` };
    try {
      return toJson(synchronous(entry.fn(JSON.parse(args)), name), `the result of \`${name}\``);
    } catch (err) {
      throw failure(err);
    }
  },
};

/** The component's `reconciler` export: the tools registered with `reconcile`. */
export const reconciler = {
  effects() {
    return [...TOOLS].filter(([, t]) => t.reconcile).map(([name]) => name);
  },
  reconcile(name, args, idempotencyKey) {
    const entry = TOOLS.get(name);
    if (entry === undefined || !entry.reconcile) {
      throw { code: "no-reconciler", message: `no tool \`${name}\` has effects` };
    }
    try {
      const result = entry.reconcile(JSON.parse(args), idempotencyKey);
      return result == null
        ? { tag: "not-done" }
        : { tag: "done", val: toJson(result, `the reconciled result of \`${name}\``) };
    } catch (err) {
      throw failure(err);
    }
  },
};
