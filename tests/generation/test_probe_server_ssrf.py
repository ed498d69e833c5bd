"""The SSRF guard on model-server URLs (``generation.backends.urlguard``), probed with addresses
Python 3.11's ``ipaddress.is_global`` calls public but that are not globally reachable: the
IETF protocol block 192.0.0.0/24 (192.0.0.192 is Oracle Cloud's legacy metadata service) and 6to4
addresses (2002::/16) carrying an internal IPv4 address. Also: a server redirecting (301, 302,
307, 308) to another host never gets that host a request."""

from __future__ import annotations

import socket

import pytest

from annotate.errors import InvalidInput
from annotate.models import Candidate
from core.jobs import JobState
from generation.backends.openai_compat import OpenAICompatBackend, validate_config
from generation.backends.urlguard import UnsafeURL, check_url
from generation.models import GenerationFailure, ModelEndpoint
from tests.generation.conftest import openai_endpoint, openai_job_inline
from tests.generation.test_backend_openai_defects import HELLO, by_prompt, fake_server, ok, send  # noqa: F401 (fixture)

INTERNAL = [
    "192.0.0.192",  # Oracle Cloud's legacy instance metadata
    "192.0.0.1",
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
]


def url_of(ip: str) -> str:
    return f"http://[{ip}]/v1" if ":" in ip else f"http://{ip}/v1"


@pytest.mark.parametrize("ip", INTERNAL)
def test_a_literal_non_public_address_is_refused(ip, settings):
    """Before: each passed check_url, validate_config and the backend (forbidden_reason None)."""
    settings.PREFHUB_ALLOWED_MODEL_HOSTS = []
    with pytest.raises(UnsafeURL, match="workers may not reach"):
        check_url(url_of(ip))
    with pytest.raises(ValueError, match="workers may not reach"):
        validate_config({"base_url": url_of(ip)})
    with pytest.raises(UnsafeURL):
        OpenAICompatBackend("m", base_url=url_of(ip))


@pytest.mark.parametrize("ip", INTERNAL)
def test_a_host_resolving_to_a_non_public_address_is_refused(ip, settings, monkeypatch):
    settings.PREFHUB_ALLOWED_MODEL_HOSTS = []
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [(family, 1, 6, "", (ip, 80))])
    with pytest.raises(UnsafeURL, match=f"resolves to {ip}"):
        check_url("http://models.example.com/v1")


def test_a_public_6to4_or_ipv4_address_still_passes(settings):
    settings.PREFHUB_ALLOWED_MODEL_HOSTS = []
    assert check_url("http://93.184.215.14/v1").url == "http://93.184.215.14/v1"
    assert check_url("http://[2002:5db8:d70e::1]/v1").url == "http://[2002:5db8:d70e::1]/v1"


@pytest.mark.django_db
def test_the_endpoint_form_refuses_it_with_the_field_and_writes_nothing(research_project, settings):
    settings.PREFHUB_ALLOWED_MODEL_HOSTS = []
    with pytest.raises(InvalidInput) as caught:
        openai_endpoint(research_project, "http://192.0.0.192/", name="meta")
    assert caught.value.field == "config" and "192.0.0.192" in str(caught.value)
    assert not ModelEndpoint.objects.filter(name="meta").exists()


# --- redirects -------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_never_followed_to_another_host(status, research_project, fake_server):  # noqa: F811
    """A server answering one prompt with a redirect to another server (reachable: loopback is
    allowed here) fails that prompt with the reason, and the other server gets no request."""
    target, target_url = fake_server(default=ok("from the other host"))
    location = f"{target_url}/v1/chat/completions"
    redirect = lambda h, body: send(h, status, raw=b"", headers={"Location": location})  # noqa: E731
    _, url = fake_server(default=by_prompt({"number 1": redirect}))
    job = openai_job_inline(research_project, url, max_retries=2)
    assert job.state == JobState.DONE
    assert target.state["requests"] == []
    assert list(Candidate.objects.filter(generation_job=job).values_list("text", flat=True)) == ["hi"]
    [failure] = GenerationFailure.objects.filter(job=job)
    assert f"({status})" in failure.message and f"redirect to {location} not followed" in failure.message
