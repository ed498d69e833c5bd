"""One rule for naming labelers (annotate.selectors.project_people_ids), whichever way a researcher
names them: the export page, the export API, the export command and the annotations filter take a
username, or a user id where no username is that text, of the project's people only; anybody else is
a 400 (or a command error) naming them.

Before, the export API took ids only and kept any id (of nobody, or of another project's user); the
page took usernames only; the command took both; the annotations filter answered an unknown name with
an empty list, and a username made of digits matched that user and the user with that id at once."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from annotate.models import Annotation
from annotate.services.projects import membership_add
from tests.conftest import add_tasks, bearer
from tests.training.conftest import EXPORT_FORM
from training.models import Export

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(make_project, labeler_in, make_user):
    project = make_project()
    tasks = add_tasks(project, prompts=2)
    alice = labeler_in(project, "alice")
    digits = labeler_in(project, "77777")  # a username of digits (not user id 77777)
    researcher = labeler_in(project, "rita", role="researcher")
    for task in tasks:
        Annotation.objects.create(task=task, labeler=alice, choice="a")
    Annotation.objects.create(task=tasks[0], labeler=digits, choice="b")
    stranger = make_user("mallory")
    membership_add(project=make_project(), user=stranger, role="labeler")
    return {
        "project": project,
        "alice": alice,
        "digits": digits,
        "researcher": researcher,
        "stranger": stranger,
    }


def _api_export(people, names):
    client = bearer(people["researcher"])
    return client.post(
        f"/api/v1/projects/{people['project'].slug}/exports/",
        {"format": "trl", "options": {"labelers_include": names, "test_size": 0}},
        format="json",
    )


def test_the_export_api_takes_usernames_and_ids_of_the_project_s_people(people):
    resp = _api_export(people, ["alice", str(people["digits"].pk)])
    assert resp.status_code == 201, resp.content
    export = Export.objects.get(project=people["project"], version=resp.json()["version"])
    assert export.options["labelers_include"] == sorted([people["alice"].pk, people["digits"].pk])
    resp = _api_export(people, "alice, 77777")  # text, as the page and the command write it
    assert resp.status_code == 201, resp.content
    assert Export.objects.get(project=people["project"], version=resp.json()["version"]).options[
        "labelers_include"
    ] == sorted([people["alice"].pk, people["digits"].pk])


@pytest.mark.parametrize("who", ["stranger", "nobody", "id-of-nobody"])
def test_the_export_api_refuses_anybody_else_naming_them(people, who):
    name = {"stranger": people["stranger"].pk, "nobody": "nobody", "id-of-nobody": 10**9}[who]
    resp = _api_export(people, [people["alice"].pk, name])
    assert resp.status_code == 400 and resp.json()["field"] == "labelers_include"
    assert str(name) in resp.json()["detail"]
    assert not Export.objects.exists()


def test_the_export_page_takes_ids_too(client, people, export_page_options):
    seen, form = export_page_options, EXPORT_FORM
    client.force_login(people["researcher"])
    url = reverse("training:export_list", args=[people["project"].slug])
    resp = client.post(url, {**form, "labelers_include": f"{people['alice'].pk}, 77777"})
    assert resp.status_code == 302, resp.content[:400]
    assert sorted(seen["labelers_include"]) == sorted([people["alice"].pk, people["digits"].pk])
    resp = client.post(url, {**form, "labelers_include": str(people["stranger"].pk)})
    assert resp.status_code == 400 and str(people["stranger"].pk).encode() in resp.content


def test_the_export_command_names_its_option(people, tmp_path):
    with pytest.raises(CommandError, match="mallory"):
        call_command(
            "export_preferences", "--project", people["project"].slug, "--format", "trl",
            "--out", str(tmp_path / "out"), "--labelers", "alice,mallory", verbosity=0,
        )  # fmt: skip
    assert not Export.objects.exists()


def test_the_annotations_filter_reads_names_the_same_way(people):
    client = bearer(people["researcher"])
    url = f"/api/v1/projects/{people['project'].slug}/annotations/"
    # "77777" is the username of digits: that user's one annotation, not user id 77777's
    assert client.get(url, {"labeler": "77777"}).json()["count"] == 1
    assert client.get(url, {"labeler": str(people["alice"].pk)}).json()["count"] == 2
    resp = client.get(url, {"labeler": "mallory"})
    assert resp.status_code == 400 and "mallory" in resp.json()["detail"]
