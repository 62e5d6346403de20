// Durable execution from JavaScript (tests/it/guest_langs.rs): an action that
// reads the clock and a random number, then asks a model twice. Under
// `--state`, a re-run after a crash must read the same values, so that its
// first request matches the record and is not sent again.

import { action } from "weir-sdk";

action(
  { description: "Asks the model a question stamped with the time and a random number, then a second one; outputs the stamp." },
  function stamp(event, ctx) {
    const model = event.payload.model;
    const now = String(Date.now());
    const random = String(Math.floor(Math.random() * 2 ** 52));
    ctx.chat(model, [{ role: "user", content: `stamp ${now} ${random}` }]);
    ctx.chat(model, [{ role: "user", content: `second ${event.key}` }]);
    ctx.sendOutput({ stamp: now, random });
  },
);

action(
  { description: "Outputs what Math.random, crypto and Date.now give." },
  function entropy(event, ctx) {
    const bytes = crypto.getRandomValues(new Uint32Array(2));
    ctx.sendOutput({
      random: Math.random(),
      uuid: crypto.randomUUID(),
      words: Array.from(bytes),
      now: Date.now(),
    });
  },
);
