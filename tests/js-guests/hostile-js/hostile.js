// The hostile-guest suite's attacks, written in JavaScript: each action tries
// to break out of the sandbox or exhaust it (tests/sandbox/js.rs).

import { action, http } from "weir-sdk";

action({ description: "A well-behaved bystander: outputs its payload." }, function echo(event, ctx) {
  ctx.sendOutput(event.payload);
});

action({ description: "Loops forever." }, function spin() {
  let n = 0;
  for (;;) n += 1;
});

action({ description: "Allocates until something stops it, keeping everything." }, function memory_bomb() {
  const hoard = [];
  for (;;) hoard.push(new Uint8Array(1 << 20).fill(1));
});

action({ description: "Recurses without end." }, function recurse() {
  const descend = (n) => descend(n + 1) + 1;
  descend(0);
});

action({ description: "Looks for a way to host files, the environment or the network; outputs what it found." }, function read_file(event, ctx) {
  const seen = {};
  // Every global that would reach outside in Node, Deno, QuickJS's shell or a browser.
  for (const name of ["std", "os", "require", "Deno", "fetch", "XMLHttpRequest", "WebSocket", "scriptArgs"]) {
    seen[name] = typeof globalThis[name];
  }
  // The runtime's module loader, asked for a host file.
  try {
    import("/etc/passwd").then(
      () => (seen.passwd = "loaded"),
      (e) => (seen.passwd = `refused: ${e}`),
    );
    seen.passwd ??= "pending";
  } catch (e) {
    seen.passwd = `refused: ${e}`;
  }
  // The SDK's process.env: the granted variables only.
  seen.env = { ...process.env };
  ctx.sendOutput(seen);
});

action({ description: "Emits events without end." }, function emit_storm(event, ctx) {
  for (;;) ctx.sendEvent("storm", { x: 1 });
});

action({ description: "Builds `mb` MiB of text and emits it." }, function big_output(event, ctx) {
  ctx.sendOutput({ text: "x".repeat(event.payload.mb << 20) });
});

action({ description: "GETs `url` through the SDK's http; outputs the status and body." }, function http_get(event, ctx) {
  const response = http.get(event.payload.url);
  ctx.sendOutput({ status: response.status, body: response.text().slice(0, 200) });
});
