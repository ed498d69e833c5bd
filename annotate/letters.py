"""How responses are named to people: A, B, C, ... by position (the labeling page: display
position; the review page and the report: the task's slot). One rule, so that a manager who reads
"B" in the report finds the same "B" on the review page."""

from __future__ import annotations


def response_letter(position: int) -> str:
    """A, B, ... Z, AA, AB, ... for positions 0, 1, ... (a ranking has at most 16 responses)."""
    name = ""
    position += 1
    while position:
        position, rest = divmod(position - 1, 26)
        name = chr(ord("A") + rest) + name
    return name
