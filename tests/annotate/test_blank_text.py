"""A response with no visible character is empty, whether it is spaces or invisible format
characters (zero-width space and joiners, word joiner, byte-order mark, soft hyphen): the labeling
page says "(This response is empty.)" and generation's check marks it empty. Before, only
whitespace counted, so a reply of U+200B showed as a blank card and passed the checks."""

import pytest

from annotate.validation import is_blank
from generation.services import candidate_checks

INVISIBLE = ["\u200b", "\u200b \u200c\u200d", "\ufeff\n\u2060", "\u00ad", " \t\n"]
VISIBLE = ["a\u200b", "\u200bx", ".", "😀", "שלום", "\u200b-"]


@pytest.mark.parametrize("text", INVISIBLE)
def test_invisible_text_is_blank_for_the_page_and_the_checks(text):
    assert is_blank(text)
    assert candidate_checks(text=text, finish_reason="stop", native_finish_reason="stop")["empty"]


@pytest.mark.parametrize("text", VISIBLE)
def test_any_visible_character_is_not_blank(text):
    assert not is_blank(text)
    assert not candidate_checks(text=text, finish_reason="stop", native_finish_reason="stop")["empty"]


@pytest.mark.django_db
def test_the_labeling_page_says_an_invisible_response_is_empty(client, make_project, labeler_in):
    from django.urls import reverse

    from annotate.models import Candidate
    from tests.conftest import add_tasks

    project = make_project()
    labeler = labeler_in(project)
    add_tasks(project, prompts=1)
    Candidate.objects.filter(prompt__project=project).update(text="\u200b\u200b")
    client.force_login(labeler)
    body = client.get(reverse("annotate:label", args=[project.slug])).content.decode()
    assert body.count("(This response is empty.)") == 2
