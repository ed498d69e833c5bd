"""A dump holds no credential a base URL's query string carries, whatever the parameter is called.

Before, ``SECRET_QUERY_PARAM`` knew key/token/secret/passw/pwd/auth/sig/credential/code only: a
base URL ``...?pass=hunter2`` (or ``pw=``, ``jwt=``, ``sessionid=``, ``bearer=``, ``cookie=``,
``hmac=``) was dumped as it was, and ``?a=1;key=SECRET`` too (the query was split on ``&`` only,
so ``key`` hid in the value of ``a``; servers that split on ``;`` read it as ``key``)."""

from __future__ import annotations

import gzip
import io

import pytest

from annotate.services.backup import project_dump
from generation.backends import config_without_secrets
from generation.services import endpoint_create

pytestmark = pytest.mark.django_db

SECRET = "hunter2-the-secret"


@pytest.mark.parametrize(
    "query",
    [
        f"pass={SECRET}",
        f"user=bob&pw={SECRET}",
        f"jwt={SECRET}",
        f"sessionid={SECRET}",
        f"bearer={SECRET}",
        f"cookie={SECRET}",
        f"hmac={SECRET}",
        f"a=1;key={SECRET}",
    ],
)
def test_a_dumped_base_url_keeps_no_credential(make_project, make_user, settings, query):
    settings.PREFHUB_ALLOWED_MODEL_HOSTS = ["model-box.example"]
    boss = make_user("boss")
    project = make_project(actor=boss)
    endpoint_create(
        name="box", backend="openai", model="served",
        config={"base_url": f"https://model-box.example/v1?api-version=2024-06&{query}"},
        project=project, actor=boss,
    )  # fmt: skip
    buf = io.BytesIO()
    project_dump(project=project, out=buf)
    data = gzip.decompress(buf.getvalue()).decode()
    assert SECRET not in data
    assert "api-version=2024-06" in data  # the other parameters are kept


def test_harmless_parameters_are_kept_as_they_were():
    url = "https://model-box.example/v1?api-version=2024-06&deployment=gpt-4o"
    assert config_without_secrets("openai", {"base_url": url}) == {"base_url": url}
