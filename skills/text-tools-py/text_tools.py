"""Text tools for models and actions, written in Python: `count_words`
counts a text's words, `top_words` ranks them. Also the test of Python
tools (schemas from type hints, calls from a Rust action)."""

from typing import Dict, List, Literal, Optional

from weir_sdk import ActionError, tool


@tool
def count_words(text: str, min_length: int = 1) -> Dict[str, int]:
    """Counts the words of a text.

    Args:
        text: The text to count.
        min_length: Shortest word counted, in characters.
    """
    words = [w for w in text.split() if len(w) >= min_length]
    return {"words": len(words), "chars": len(text)}


@tool(name="top_words")
def rank(words: List[str], top: Optional[int] = None, order: Literal["count", "alpha"] = "count") -> list:
    """Ranks words by how often they occur.

    :param words: The words to rank.
    :param top: How many to return (all by default).
    :param order: `count` (most frequent first) or `alpha`.
    """
    if top is not None and top < 0:
        raise ActionError("bad-arguments", "top must not be negative")
    counts: Dict[str, int] = {}
    for word in words:
        counts[word] = counts.get(word, 0) + 1
    key = (lambda i: (-i[1], i[0])) if order == "count" else (lambda i: i[0])
    ranked = [{"word": w, "count": n} for w, n in sorted(counts.items(), key=key)]
    return ranked if top is None else ranked[:top]
