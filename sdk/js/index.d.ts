// Types of weir's JavaScript guest SDK (index.js), for editors and
// TypeScript's checkJs. weir builds the JavaScript with componentize-qjs;
// these types are not needed at build time.

/** Any value JSON can hold. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** The event type that leaves the agent (Flink Agents' OutputEvent). */
export const OUTPUT: "_output_event";

/** Longest stack trace an uncaught exception puts in its error event. */
export const MAX_TRACE_CHARS: number;

/** Why an action failed: weir turns it into an error event with this code and message. */
export class ActionError extends Error {
  constructor(code: string, message: string);
  /** Short and machine-readable, e.g. `bad-payload`. */
  readonly code: string;
  /** What went wrong. */
  readonly detail: string;
}

/**
 * A host call weir did not carry out: code `denied` (not granted), `invalid`
 * (bad arguments), `limit` (a task limit) or `host-failed`. Left uncaught,
 * it fails the action with that code.
 */
export class HostError extends ActionError {}

/** An event an action handles. */
export class Event {
  /** Unique id, assigned by weir. */
  readonly id: string;
  /** The event type. */
  readonly type: string;
  /** The key it belongs to: a key's events run in order. */
  readonly key: string;
  /** The id of the event whose action emitted this one; null for input. */
  readonly upstreamId: string | null;
  /** Free-form string attributes. */
  readonly attributes: Record<string, string>;
  /** The payload as JSON text. */
  readonly raw: string;
  /** The payload, decoded; a payload that is not JSON fails the action with `bad-payload`. */
  readonly payload: any;
}

/** One scope of the key's memory. Paths are dot-separated (`user.name`); the empty path is the root. */
export class Memory {
  /** The value at `path`, or `fallback` (null) when there is none. */
  get<T = any>(path: string, fallback?: T): T;
  /** Sets `path` to `value`, creating the objects on the way. Undone if the action fails. */
  set(path: string, value: Json | object): void;
  /** Removes `path`; whether it was there. */
  remove(path: string): boolean;
  /** The field names of the object at `path` (the top level by default). */
  fieldNames(path?: string): string[];
}

/** A chat message. */
export interface Message {
  role: "system" | "user" | "assistant" | "tool";
  content: string;
  /** The tool call a `tool` message answers. */
  toolCallId?: string | null;
}

/** A tool call a model asked for. */
export interface ToolCall {
  id: string;
  name: string;
  arguments: Record<string, any>;
}

/** A model's reply. */
export interface ChatResponse {
  content: string;
  toolCalls: ToolCall[];
  /** `stop`, `length` or `tool-calls`. */
  finishReason: string;
  inputTokens: number;
  outputTokens: number;
  /** The model that answered, as the provider names it. */
  model: string;
}

/** Options of one chat call. */
export interface ChatOptions {
  /** Offer the model the tools its resource lists. */
  useTools?: boolean;
  /** Overrides of the resource's options: temperature, max_tokens, seed, top_p, stop. */
  options?: Record<string, Json> | null;
  /** A JSON Schema the reply's content must follow. */
  outputSchema?: Record<string, Json> | null;
}

/** A tool as a model is told about it. */
export interface ToolSpec {
  name: string;
  description: string;
  parameters: Record<string, any>;
}

/** Structured log records, shown in weir's log with the action's name, key and event. */
export interface Log {
  trace(message: string, fields?: Record<string, unknown>): void;
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/**
 * What an action can do besides computing (Flink Agents' RunnerContext).
 * Every call goes through weir's host, allowed by the agent's grants; a
 * refused call throws a HostError.
 */
export class RunnerContext {
  /** Kept per key across agent runs. */
  readonly shortTermMemory: Memory;
  /** Kept for one agent run, then cleared. */
  readonly sensoryMemory: Memory;
  readonly log: Log;
  /** The key of the event being handled. */
  readonly key: string;
  /** The name the agent gave this action. */
  readonly actionName: string;
  /** The same for a re-run of this task after a crash: send it with calls that have effects. */
  readonly idempotencyKey: string;
  /** A config value: the action's `config` first, then the agent's; `fallback` (null) when neither sets it. */
  config<T = any>(name: string, fallback?: T): T;
  /** The whole merged config. */
  configAll(): Record<string, any>;
  /** Emits an event of `type` to the actions listening to it; returns its id. Takes effect only if the action succeeds. */
  sendEvent(type: string, payload: Json | object, attributes?: Record<string, string>): string;
  /** Emits an output event, which leaves the agent. */
  sendOutput(payload: Json | object): string;
  /** Asks the chat-model resource `model` (granted with `models = [...]`). */
  chat(model: string, messages: Message[], options?: ChatOptions): ChatResponse;
  /** Embeds `texts` with the embedding-model resource `model`: one vector per text. */
  embed(model: string, texts: string[]): number[][];
  /** Calls a granted tool (`tools = [...]`) with an arguments object; its result. */
  callTool(name: string, args: Record<string, any>): any;
  /** The tools this action may call. */
  availableTools(): ToolSpec[];
}

/** An HTTP response, read whole. */
export class Response {
  /** The status code. */
  readonly status: number;
  /** Header names and values, in the order received. */
  readonly headers: [string, string][];
  /** The body. */
  readonly body: Uint8Array;
  /** The first value of header `name` (any case), or `null`. */
  header(name: string): string | null;
  /** The body as UTF-8 text. */
  text(): string;
  /** The body decoded from JSON; throws ActionError `bad-response` if it is not JSON. */
  json(): any;
}

/** What an HTTP request may add to its method and URL. */
export interface RequestOptions {
  /** Header names and values. */
  headers?: Record<string, string>;
  /** Give up when connecting, the first byte or any later byte takes longer (default 600 s). */
  timeoutMs?: number | null;
}

/**
 * Outbound HTTP through weir: only to the hosts the agent grants
 * (`http = ["https://api.example.com"]`), with the task's idempotency key,
 * recorded under durable execution. Calls block until the whole response is
 * read. A refused request throws HostError `denied`; a failed one HostError
 * `host-failed`.
 */
export const http: {
  request(method: string, url: string, options?: RequestOptions & { body?: string | Uint8Array | null }): Response;
  get(url: string, options?: RequestOptions): Response;
  /** `json` is sent as JSON (content-type application/json); `data` as it is. */
  post(url: string, options?: RequestOptions & { json?: Json | object; data?: string | Uint8Array | null }): Response;
};

/** How an action is registered. */
export interface ActionOptions {
  /** The name agent manifests map events to (default: the function's name). */
  name?: string;
  /** What it does, shown by `weir plan`. */
  description?: string;
}

/** An action: runs on one event; throws to fail (an ActionError, or anything else as `exception`). */
export type ActionFn = (event: Event, ctx: RunnerContext) => void;

/** Registers `fn` as an action; returns it. */
export function action<F extends ActionFn>(fn: F): F;
export function action<F extends ActionFn>(options: ActionOptions, fn: F): F;

/** A JSON Schema of one argument, with an optional default (which makes the argument optional). */
export type ParameterSchema = Record<string, any> & { description?: string; default?: Json };

/** How a tool is registered. */
export interface ToolOptions<A> {
  /** The tool's name, 1-128 of `[A-Za-z0-9_.-]` (default: the function's name). */
  name?: string;
  /** What it does, for the model. */
  description: string;
  /** Each argument's JSON Schema. Arguments not listed are refused. */
  parameters: { [K in keyof A]: ParameterSchema };
  /** The required arguments (default: those without a `default`). */
  required?: (keyof A & string)[];
  /**
   * Marks the tool as having external effects: after a crash weir asks this
   * what became of an interrupted call (the tool's result, or null if it
   * did not take effect) instead of calling again.
   */
  reconcile?: (args: A, idempotencyKey: string) => Json | object | null;
}

/** Registers `fn` as a tool models (and actions granted it) may call; returns it. */
export function tool<A extends Record<string, any>>(options: ToolOptions<A>, fn: (args: A) => Json | object): (args: A) => Json | object;

declare global {
  /** The environment variables the agent grants (`env = [...]`), read on first use. */
  var process: { readonly env: Readonly<Record<string, string>> };
}
