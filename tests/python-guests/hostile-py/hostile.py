"""The hostile-guest suite's attacks, written in Python: each action tries to
break out of the sandbox or exhaust it (tests/sandbox/python.rs)."""

import os
import sys

from weir_sdk import Event, RunnerContext, action, http


@action
def echo(event: Event, ctx: RunnerContext) -> None:
    """A well-behaved bystander: outputs its payload."""
    ctx.send_output(event.payload)


@action
def spin(event: Event, ctx: RunnerContext) -> None:
    """Loops forever."""
    n = 0
    while True:
        n += 1


@action
def memory_bomb(event: Event, ctx: RunnerContext) -> None:
    """Allocates until something stops it, keeping everything."""
    hoard = []
    while True:
        hoard.append(bytearray(1 << 20))


@action
def recurse(event: Event, ctx: RunnerContext) -> None:
    """Recurses without end, past Python's own recursion limit."""
    sys.setrecursionlimit(10**9)

    def descend(n: int) -> int:
        return descend(n + 1) + 1

    descend(0)


@action
def read_file(event: Event, ctx: RunnerContext) -> None:
    """Tries to read a host file and list the root; outputs what it saw."""
    seen = {}
    for attempt, run in [
        ("passwd", lambda: open("/etc/passwd").read()),
        ("root", lambda: os.listdir("/")),
        ("cwd", lambda: os.listdir(".")),
    ]:
        try:
            seen[attempt] = repr(run())[:200]
        except Exception as exc:
            seen[attempt] = f"refused: {type(exc).__name__}"
    ctx.send_output(seen)


@action
def read_env(event: Event, ctx: RunnerContext) -> None:
    """Outputs every environment variable it can see."""
    ctx.send_output(dict(os.environ))


@action
def connect(event: Event, ctx: RunnerContext) -> None:
    """Tries to open a TCP connection to `addr` (host:port) and send bytes;
    outputs how far it got."""
    host, port = event.payload["addr"].rsplit(":", 1)
    try:
        import socket

        with socket.create_connection((host, int(port)), timeout=2) as conn:
            conn.sendall(b"stolen")
        ctx.send_output({"connected": True})
    except Exception as exc:
        ctx.send_output({"error": f"{type(exc).__name__}: {exc}"})


@action
def http_get(event: Event, ctx: RunnerContext) -> None:
    """GETs `url` through wasi:http; outputs the status and body."""
    response = http.get(event.payload["url"])
    ctx.send_output({"status": response.status, "body": response.text()[:200]})


@action
def emit_storm(event: Event, ctx: RunnerContext) -> None:
    """Emits events without end."""
    while True:
        ctx.send_event("storm", {"x": 1})


@action
def big_output(event: Event, ctx: RunnerContext) -> None:
    """Builds `mb` MiB of text and emits it."""
    ctx.send_output({"text": "x" * (event.payload["mb"] << 20)})
