"""weir's guest SDK for Python: actions as decorated functions, built to a
WebAssembly component with componentize-py and run sandboxed by weir.

An action receives the event and a :class:`RunnerContext`, as in Apache Flink
Agents::

    from weir_sdk import action, Event, RunnerContext

    @action(listen="_input_event")
    def count_words(event: Event, ctx: RunnerContext) -> None:
        \"\"\"Counts the words of a sentence.\"\"\"
        words = len(str(event.payload).split())
        total = ctx.short_term_memory.get("total", 0) + words
        ctx.short_term_memory.set("total", total)
        ctx.send_output({"words": words, "total": total})

Everything an action reaches outside its own memory goes through weir's host
functions (the WIT imports in ``wit/``), each allowed by the agent's grants.
A failed host call raises :class:`HostError`; an action fails by raising
:class:`ActionError` (or any exception, whose traceback becomes the error
event's message).
"""

from __future__ import annotations

import json
import traceback
from typing import Any, Callable, Dict, List, Optional, Tuple

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import reconciler as _reconciler
from wit_world.imports import context as _context
from wit_world.imports import events as _events
from wit_world.imports import log as _log
from wit_world.imports import memory as _memory
from wit_world.imports import model as _model
from wit_world.imports import tools as _tools
from wit_world.imports import weir_agent_types as _types

from ._schema import tool_schema

__all__ = [
    "action",
    "tool",
    "ActionError",
    "HostError",
    "Event",
    "Memory",
    "RunnerContext",
    "Message",
    "ChatResponse",
    "OUTPUT",
]

#: The event type that leaves the agent (Flink Agents' ``OutputEvent``).
OUTPUT = "_output_event"

#: Longest traceback an uncaught exception puts in its error event.
MAX_TRACEBACK_CHARS = 8192


class ActionError(Exception):
    """Why an action failed: weir turns it into an error event.

    ``code`` is short and machine-readable (``bad-payload``), ``message``
    says what went wrong.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class HostError(ActionError):
    """A host call weir did not carry out: ``denied`` (not granted),
    ``invalid`` (bad arguments), ``limit`` (a task limit) or ``host-failed``.
    Left uncaught, it fails the action with that code.
    """


def _host_error(err: Err) -> HostError:
    kind = {
        "HostError_Denied": "denied",
        "HostError_Invalid": "invalid",
        "HostError_Limit": "limit",
        "HostError_Failed": "host-failed",
    }.get(type(err.value).__name__, "host-failed")
    return HostError(kind, str(getattr(err.value, "value", err.value)))


def _host(call: Callable[..., Any], *args: Any) -> Any:
    """Calls a host function, raising :class:`HostError` for its error."""
    try:
        return call(*args)
    except Err as err:
        raise _host_error(err) from None


class Event:
    """An event an action handles. ``payload`` is the decoded JSON value."""

    __slots__ = ("id", "type", "key", "upstream_id", "attributes", "_raw", "_payload")

    def __init__(self, wit: _types.Event) -> None:
        self.id: str = wit.id
        self.type: str = wit.event_type
        self.key: str = wit.key
        self.upstream_id: Optional[str] = wit.upstream_id
        self.attributes: Dict[str, str] = dict(wit.attributes)
        self._raw = wit.payload
        self._payload: Any = _UNSET

    @property
    def payload(self) -> Any:
        """The payload as Python values (dicts, lists, str, numbers, None).
        A payload that is not JSON fails the action with ``bad-payload``."""
        if self._payload is _UNSET:
            try:
                self._payload = json.loads(self._raw)
            except ValueError as e:
                raise ActionError("bad-payload", f"the payload is not JSON: {e}") from None
        return self._payload


_UNSET = object()


class Memory:
    """One scope of the key's memory: ``short_term`` (kept across runs) or
    ``sensory`` (this run only). Paths are dot-separated (``user.name``)."""

    def __init__(self, scope: _memory.Scope) -> None:
        self._scope = scope

    def get(self, path: str, default: Any = None) -> Any:
        """The value at ``path``, or ``default`` when there is none."""
        text = _host(_memory.get, self._scope, path)
        return default if text is None else json.loads(text)

    def set(self, path: str, value: Any) -> None:
        """Sets ``path`` to ``value`` (anything JSON can hold)."""
        _host(_memory.set, self._scope, path, json.dumps(value))

    def remove(self, path: str) -> bool:
        """Removes ``path``; whether it was there."""
        return _host(_memory.remove, self._scope, path)

    def field_names(self, path: str = "") -> List[str]:
        """The names under ``path`` (the top level by default)."""
        return _host(_memory.field_names, self._scope, path)


class Message:
    """A chat message: ``role`` is ``system``, ``user``, ``assistant`` or ``tool``."""

    def __init__(self, role: str, content: str, tool_call_id: Optional[str] = None) -> None:
        self.role = role
        self.content = content
        self.tool_call_id = tool_call_id


class ChatResponse:
    """A model's answer: its text, the tool calls it asked for, its usage."""

    def __init__(self, wit: _model.ChatResponse) -> None:
        self.content: str = wit.message.content
        self.tool_calls = [
            {"id": c.id, "name": c.name, "arguments": json.loads(c.arguments or "{}")}
            for c in wit.message.tool_calls
        ]
        self.finish_reason: str = wit.finish_reason
        self.input_tokens: int = wit.usage.input_tokens
        self.output_tokens: int = wit.usage.output_tokens


class _Log:
    """Structured log records, shown in weir's log with the action's name."""

    def _write(self, level: _log.Level, message: str, fields: Dict[str, Any]) -> None:
        _log.write(level, message, [(k, str(v)) for k, v in fields.items()])

    def debug(self, message: str, **fields: Any) -> None:
        self._write(_log.Level.DEBUG, message, fields)

    def info(self, message: str, **fields: Any) -> None:
        self._write(_log.Level.INFO, message, fields)

    def warn(self, message: str, **fields: Any) -> None:
        self._write(_log.Level.WARN, message, fields)

    def error(self, message: str, **fields: Any) -> None:
        self._write(_log.Level.ERROR, message, fields)


class RunnerContext:
    """What an action can do besides computing: emit events, use memory,
    read its config, log, call models and tools (Flink Agents'
    ``RunnerContext``)."""

    short_term_memory = Memory(_memory.Scope.SHORT_TERM)
    sensory_memory = Memory(_memory.Scope.SENSORY)
    log = _Log()

    @property
    def key(self) -> str:
        """The key of the event being handled."""
        return _context.key()

    @property
    def action_name(self) -> str:
        """The name the agent gave this action."""
        return _context.action_name()

    @property
    def idempotency_key(self) -> str:
        """The same for a re-run of this task after a crash: send it with
        calls that have effects."""
        return _context.idempotency_key()

    def config(self, name: str, default: Any = None) -> Any:
        """A config value: the action's ``config`` first, then the agent's."""
        text = _context.config(name)
        return default if text is None else json.loads(text)

    def send_event(
        self, event_type: str, payload: Any, attributes: Optional[Dict[str, str]] = None
    ) -> str:
        """Emits an event of ``event_type`` to the actions listening to it;
        returns its id. Takes effect only if the action succeeds."""
        pairs: List[Tuple[str, str]] = list((attributes or {}).items())
        return _host(_events.emit, event_type, json.dumps(payload), pairs)

    def send_output(self, payload: Any) -> str:
        """Emits an output event, which leaves the agent."""
        return self.send_event(OUTPUT, payload)

    def chat(
        self,
        model: str,
        messages: List[Message],
        *,
        use_tools: bool = False,
        options: Optional[Dict[str, Any]] = None,
        output_schema: Optional[Dict[str, Any]] = None,
    ) -> ChatResponse:
        """Asks the chat model resource ``model`` (granted in the manifest)."""
        request = _model.ChatRequest(
            model=model,
            messages=[
                _model.Message(role=m.role, content=m.content, tool_calls=[], tool_call_id=m.tool_call_id)
                for m in messages
            ],
            use_tools=use_tools,
            options=json.dumps(options) if options is not None else None,
            output_schema=json.dumps(output_schema) if output_schema is not None else None,
        )
        return ChatResponse(_host(_model.chat, request))

    def embed(self, model: str, texts: List[str]) -> List[List[float]]:
        """Embeds ``texts`` with the embedding model resource ``model``."""
        return _host(_model.embed, model, texts)

    def call_tool(self, name: str, arguments: Dict[str, Any]) -> Any:
        """Calls a granted tool with JSON arguments; its JSON result."""
        return json.loads(_host(_tools.call, name, json.dumps(arguments)))


_ACTIONS: Dict[str, Tuple[Callable[[Event, RunnerContext], None], str]] = {}
_CONTEXT = RunnerContext()


def action(
    fn: Optional[Callable[..., None]] = None, *, name: Optional[str] = None, listen: Any = None
) -> Any:
    """Registers ``fn(event, ctx)`` as an action, named ``name`` (default:
    the function's name). Its docstring's first paragraph is its
    description. ``listen`` documents the event types it is meant for; the
    agent manifest decides what it listens to."""

    def register(fn: Callable[..., None]) -> Callable[..., None]:
        action_name = name or fn.__name__
        if action_name in _ACTIONS:
            raise ValueError(f"two actions are named `{action_name}`")
        _ACTIONS[action_name] = (fn, _description(fn))
        return fn

    return register(fn) if fn is not None else register


#: A tool's reconciler: the call's arguments and idempotency key in, the
#: tool's result if the call took effect (None if it did not) out.
Reconcile = Callable[[Dict[str, Any], str], Any]

_TOOLS: Dict[str, Tuple[Callable[..., Any], str, str, Optional[Reconcile]]] = {}


def tool(
    fn: Optional[Callable[..., Any]] = None,
    *,
    name: Optional[str] = None,
    reconcile: Optional[Reconcile] = None,
) -> Any:
    """Registers ``fn`` as a tool models (and actions granted it) may call,
    named ``name`` (default: the function's name). Its arguments' JSON
    Schema comes from its type hints, its description and the parameters'
    from its docstring (see ``weir_sdk._schema``); weir checks every call's
    arguments against the schema before the tool runs. It returns anything
    JSON can hold.

    A tool with ``reconcile`` has external effects (a payment, an email):
    after a crash weir asks ``reconcile(arguments, idempotency_key)`` what
    became of an interrupted call (the tool's result, or None if it did not
    take effect) instead of calling again."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        tool_name = name or fn.__name__
        if tool_name in _TOOLS:
            raise ValueError(f"two tools are named `{tool_name}`")
        description, parameters = tool_schema(fn)
        _TOOLS[tool_name] = (fn, description, json.dumps(parameters), reconcile)
        return fn

    return register(fn) if fn is not None else register


def _description(fn: Callable[..., Any]) -> str:
    doc = (fn.__doc__ or "").strip()
    return doc.split("\n\n")[0].replace("\n", " ").strip()


def _failure(exc: BaseException) -> _types.ActionError:
    if isinstance(exc, ActionError):
        return _types.ActionError(code=exc.code, message=exc.message)
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if len(text) > MAX_TRACEBACK_CHARS:
        text = "... " + text[-MAX_TRACEBACK_CHARS:]
    return _types.ActionError(code="exception", message=text)


class Handler(exports.Handler):
    """The component's `handler` export: dispatches to the registered actions."""

    def actions(self) -> List[_types.ActionInfo]:
        return [_types.ActionInfo(name=n, description=d) for n, (_, d) in _ACTIONS.items()]

    def handle(self, action: str, event: _types.Event) -> None:
        entry = _ACTIONS.get(action)
        if entry is None:
            raise Err(
                _types.ActionError(
                    code="unknown-action", message=f"this component carries no action `{action}`"
                )
            )
        try:
            entry[0](Event(event), _CONTEXT)
        except Exception as exc:  # every failure becomes an error event
            raise Err(_failure(exc)) from None


class ToolProvider(exports.ToolProvider):
    """The component's `tool-provider` export: the registered tools."""

    def tools(self) -> List[_types.ToolSpec]:
        return [
            _types.ToolSpec(name=n, description=d, parameters=p) for n, (_, d, p, _) in _TOOLS.items()
        ]

    def call(self, name: str, arguments: str) -> str:
        entry = _TOOLS.get(name)
        if entry is None:
            raise Err(_types.ActionError(code="unknown-tool", message=f"no tool `{name}`"))
        try:
            result = entry[0](**json.loads(arguments))
            return json.dumps(result)
        except Exception as exc:  # every failure becomes the tool's error
            raise Err(_failure(exc)) from None


class Reconciler(exports.Reconciler):
    """The component's `reconciler` export: the tools registered with ``reconcile``."""

    def effects(self) -> List[str]:
        return [n for n, entry in _TOOLS.items() if entry[3] is not None]

    def reconcile(self, name: str, arguments: str, idempotency_key: str) -> _reconciler.Reconciled:
        entry = _TOOLS.get(name)
        if entry is None or entry[3] is None:
            raise Err(_types.ActionError(code="no-reconciler", message=f"no tool `{name}` has effects"))
        try:
            result = entry[3](json.loads(arguments), idempotency_key)
            if result is None:
                return _reconciler.Reconciled_NotDone()
            return _reconciler.Reconciled_Done(json.dumps(result))
        except Exception as exc:  # every failure becomes the reconciler's error
            raise Err(_failure(exc)) from None
