"""Times on the report and review pages: under 10 s with one decimal. Before, widthratio rounded
to whole seconds, so a labeler's median of 400 ms read "0 s"."""

import pytest
from django.template import Context, Template

from annotate.templatetags.prefhub_numbers import seconds


@pytest.mark.parametrize(
    ("ms", "shown"),
    [
        (400, "0.4 s"),
        (49, "0.0 s"),
        (3240, "3.2 s"),
        (9940, "9.9 s"),
        (9960, "10 s"),
        (125_400, "125 s"),
        (None, ""),
    ],
)
def test_seconds(ms, shown):
    assert seconds(ms) == shown


def test_the_pages_load_it():
    rendered = Template("{% load prefhub_numbers %}{{ t|seconds }}").render(Context({"t": 400}))
    assert rendered == "0.4 s"
