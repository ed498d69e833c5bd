"""``evaluate_reward`` with one bad number.

Before: ``--batch-size 0`` (or ``--max-length -3``, ``--limit -1``) was answered "--max-length and
--batch-size must be positive, --limit not negative.": every option named, the one at fault and its
value not.
Now: the message names the option at fault and the value given, as the other commands do
(``--batch-size: must be at least 1 (got 0).``); it is still checked before anything is read.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError


@pytest.mark.parametrize(
    ("option", "value", "least"),
    [("--batch-size", "0", 1), ("--batch-size", "-2", 1), ("--max-length", "0", 1), ("--limit", "-1", 0)],
)
def test_the_option_at_fault_is_named_with_its_value(tmp_path, option, value, least):
    with pytest.raises(CommandError, match=rf"^{option}: must be at least {least} \(got {value}\)\.$"):
        call_command(
            "evaluate_reward", "--model", "unused", "--dataset", str(tmp_path / "none.jsonl"), option, value
        )
