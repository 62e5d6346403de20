"""The side-by-side benchmark's agents (../shared/bench/flink-agents-sbs,
benches/langs.sh) as weir actions in Python: the same functions Apache Flink
Agents runs natively there (upper-case a sentence, count its words), one
per variant."""

from weir_sdk import Event, RunnerContext, action


def text_of(event: Event) -> str:
    value = event.payload
    return value if isinstance(value, str) else str(value)


@action
def single(event: Event, ctx: RunnerContext) -> None:
    """Input -> output."""
    text = text_of(event)
    ctx.send_output({"upper": text.upper(), "words": len(text.split())})


@action
def first(event: Event, ctx: RunnerContext) -> None:
    """Input -> `bench_processed`."""
    text = text_of(event)
    ctx.send_event("bench_processed", {"upper": text.upper(), "text": text})


@action
def second(event: Event, ctx: RunnerContext) -> None:
    """`bench_processed` -> output."""
    value = event.payload
    ctx.send_output({"upper": value["upper"], "words": len(value["text"].split())})


@action
def memory(event: Event, ctx: RunnerContext) -> None:
    """Input -> output, with a running word total in short-term memory."""
    text = text_of(event)
    words = len(text.split())
    stm = ctx.short_term_memory
    total = (stm.get("total_words") or 0) + words
    stm.set("total_words", total)
    ctx.send_output({"upper": text.upper(), "words": words, "total_words": total})
