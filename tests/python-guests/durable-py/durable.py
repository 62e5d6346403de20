"""Durable execution from Python (tests/it/python.rs): an action that reads
the clock and random bytes, then asks a model twice. Under `--state`, a
re-run after a crash must read the same values, so that its first request
matches the record and is not sent again."""

import os
import time

from weir_sdk import Event, Message, RunnerContext, action


@action
def stamp(event: Event, ctx: RunnerContext) -> None:
    """Asks the model a question stamped with the time and a random number,
    then a second one; outputs the stamp."""
    model = event.payload["model"]
    nanos = str(time.time_ns())
    random = str(int.from_bytes(os.urandom(8), "little"))
    ctx.chat(model, [Message("user", f"stamp {nanos} {random}")])
    ctx.chat(model, [Message("user", f"second {event.key}")])
    ctx.send_output({"stamp": nanos, "random": random})
