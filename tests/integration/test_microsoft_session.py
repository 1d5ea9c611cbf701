"""The Microsoft entry's config, app-only auth through msal, TLS trust and the session's limits,
against the local identity platform and Graph over HTTPS."""

from __future__ import annotations

import hashlib
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization

from feedback_agendas.agendas.errors import PermissionDenied, QuotaExceeded, TransientError
from feedback_agendas.agendas.model import EventRef
from feedback_agendas.integrations.calendars.base import BuildContext
from feedback_agendas.integrations.calendars.microsoft import MicrosoftProvider
from feedback_agendas.integrations.calendars.microsoft_config import UPDATE_WARNING, build_microsoft
from feedback_agendas.integrations.calendars.microsoft_session import Certificate, GraphSession
from feedback_agendas.scheduler.config.source import load_config
from feedback_agendas.scheduler.service.cli import main
from tests.fakes.graph_api import FakeGraph
from tests.support.graph import CLIENT_ID, SECRET, graph_provider, graph_session, start_graph

MONA = "mona@example.com"


OPENED: list[GraphSession] = []


def opened(session: GraphSession) -> GraphSession:
    OPENED.append(session)
    return session


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    fake = start_graph()
    yield fake
    while OPENED:
        OPENED.pop().close()
    fake.stop()
    assert fake.violations == []


def write(tmp_path: Path, entry: str) -> Path:
    path = tmp_path / "config.yaml"
    body = textwrap.indent(textwrap.dedent(entry), "    ")
    path.write_text(
        "calendars:\n  - name: mona\n    provider: microsoft\n    owner: mona@example.com\n"
        f"{body}org:\n  internal_domains: [example.com]\n"
        "  teams: [{name: t, manager: mona@example.com, members: [alice@example.com]}]\n",
        encoding="utf-8",
    )
    return path


def test_body_mode_warns_of_the_update_and_the_secret_comes_from_the_environment(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        f"""\
        tenant_id: contoso.onmicrosoft.com
        client_id: {CLIENT_ID}
        client_secret: ${{MS_CLIENT_SECRET}}
        """,
    )
    cfg = load_config(path, environ={"MS_CLIENT_SECRET": SECRET})
    assert cfg.warnings == (f"calendars[0] (mona): {UPDATE_WARNING}",)
    assert "attendees receive one Outlook meeting update when an agenda is added" in UPDATE_WARNING
    assert SECRET not in repr(cfg)
    result = CliRunner(env={"MS_CLIENT_SECRET": SECRET}).invoke(
        main, ["check-config", "--config", str(path)]
    )
    assert result.exit_code == 0, result.output
    assert "one Outlook meeting update" in result.output
    assert SECRET not in result.output

    reminder = write(
        tmp_path,
        f"""\
        tenant_id: contoso.onmicrosoft.com
        client_id: {CLIENT_ID}
        client_secret: x
        write_mode: reminder
        """,
    )
    assert load_config(reminder, environ={}).warnings == ()


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (
            "tenant_id: t\nclient_id: c\n",
            "config.yaml:2: calendars[0].client_secret: give exactly one",
        ),
        (
            "tenant_id: t\nclient_id: c\nclient_secret: s\nwrite_mode: silent\n",
            "config.yaml:8: calendars[0].write_mode: Input should be 'body' or 'reminder'",
        ),
        (
            "tenant_id: t\nclient_id: c\nclient_secret: s\nauthority: http://login.test/\n",
            "calendars[0].authority: must be an https URL",
        ),
        (
            "tenant_id: t\nclient_id: c\ncertificate: {path: app.pem, thumbprint: xyz}\n",
            "calendars[0].certificate.thumbprint",
        ),
    ],
)
def test_bad_entries_name_the_file_line_and_key(tmp_path: Path, entry: str, problem: str) -> None:
    path = write(tmp_path, entry)
    result = CliRunner().invoke(main, ["check-config", "--config", str(path)])
    assert result.exit_code == 2, result.output
    assert problem in result.output


def test_a_missing_certificate_file_is_a_problem_here(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"tenant_id: t\nclient_id: c\ncertificate: {{path: app.pem, thumbprint: {'a' * 40}}}\n",
    )
    result = CliRunner().invoke(main, ["check-config", "--config", str(path)])
    assert result.exit_code == 2, result.output
    assert "calendars[0].certificate.path: file not found" in result.output


def test_a_client_secret_gets_a_token_once_and_reads_a_mailbox(graph: FakeGraph) -> None:
    session = opened(graph_session(graph))
    provider_a = build_session_provider(graph, session)
    provider_a.read_changes(None)
    provider_a.get(EventRef(MONA, "gone"))
    assert graph.requests["token"] == 1  # cached in memory by msal
    assert session.token_requests == 1
    session.close()


def build_session_provider(graph: FakeGraph, session: GraphSession) -> MicrosoftProvider:
    return graph_provider(graph, MONA, session=session)


def test_a_certificate_authenticates_with_a_signed_assertion(
    graph: FakeGraph, tmp_path: Path
) -> None:
    ca = trustme.CA(key_type=trustme.KeyType.RSA)  # Entra takes RSA certificates
    leaf = ca.issue_cert("feedback-agendas.example.com", key_type=trustme.KeyType.RSA)
    cert_pem = leaf.cert_chain_pems[0].bytes()
    from cryptography import x509

    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    thumbprint = hashlib.sha1(der).hexdigest()  # what Entra calls the thumbprint
    graph.add_app("cert-app", certificate_pem=cert_pem)

    def session_with(cert: trustme.LeafCert, name: str) -> GraphSession:
        """A session of "cert-app" that signs with ``cert``'s key (kept in one PEM file)."""
        pem = tmp_path / name
        pem.write_bytes(cert.private_key_pem.bytes() + cert.cert_chain_pems[0].bytes())
        return opened(
            GraphSession(
                tenant_id=graph.tenant,
                client_id="cert-app",
                certificate=Certificate(pem, thumbprint),
                authority=graph.authority,
                graph_endpoint=graph.graph_endpoint,
                ca_bundle=Path(graph.ca_file),
            )
        )

    assert session_with(leaf, "app.pem").token().startswith("fake-graph-token-")
    other = ca.issue_cert("someone-else.example.com", key_type=trustme.KeyType.RSA)
    with pytest.raises(PermissionDenied, match="invalid_client"):
        session_with(other, "wrong.pem").token()
    # An EC key (msal signs with RS256/PS256 only): a clear refusal, not a traceback.
    with pytest.raises(PermissionDenied, match="RSA"):
        session_with(trustme.CA().issue_cert("ec.example.com"), "ec.pem").token()


def test_a_wrong_secret_or_tenant_is_refused_without_the_secret_in_the_message(
    graph: FakeGraph,
) -> None:
    wrong = opened(
        GraphSession(
            tenant_id=graph.tenant,
            client_id=CLIENT_ID,
            client_secret="not-the-secret",
            authority=graph.authority,
            graph_endpoint=graph.graph_endpoint,
            ca_bundle=Path(graph.ca_file),
        )
    )
    with pytest.raises(PermissionDenied) as refused:
        wrong.token()
    assert "not-the-secret" not in str(refused.value)
    elsewhere = opened(
        GraphSession(
            tenant_id="fabrikam.onmicrosoft.com",
            client_id=CLIENT_ID,
            client_secret=SECRET,
            authority=graph.authority,
            graph_endpoint=graph.graph_endpoint,
            ca_bundle=Path(graph.ca_file),
        )
    )
    with pytest.raises(PermissionDenied, match="tenant"):
        elsewhere.token()


def test_requests_ca_bundle_in_the_environment_does_not_replace_our_trust(
    graph: FakeGraph, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # An environment that points requests at a bundle without the fake's CA.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    session = opened(graph_session(graph))
    assert session.token()
    # Without ca_bundle the fake's self-made CA is not trusted: a clear, retryable failure.
    untrusted = opened(
        GraphSession(
            tenant_id=graph.tenant,
            client_id=CLIENT_ID,
            client_secret=SECRET,
            authority=graph.authority,
            graph_endpoint=graph.graph_endpoint,
            sleep=lambda _s: None,
        )
    )
    with pytest.raises(TransientError, match="SSLError"):
        untrusted.token()


def test_the_factory_shares_one_session_per_app_registration(
    graph: FakeGraph, tmp_path: Path
) -> None:
    entries = "".join(
        f"""\
  - name: {who}
    provider: microsoft
    owner: {who}@example.com
    tenant_id: {graph.tenant}
    client_id: {CLIENT_ID}
    client_secret: {SECRET}
    authority: {graph.authority}
    graph_endpoint: {graph.graph_endpoint}
    ca_bundle: {graph.ca_file}
"""
        for who in ("mona", "lena")
    )
    path = tmp_path / "config.yaml"
    path.write_text(
        f"calendars:\n{entries}org:\n  internal_domains: [example.com]\n", encoding="utf-8"
    )
    cfg = load_config(path, environ={})
    mona, lena = (build_microsoft(c, BuildContext()) for c in cfg.calendars)  # type: ignore[arg-type]
    assert mona.session is lena.session
    mona.read_changes(None)
    lena.read_changes(None)
    assert graph.requests["token"] == 1
    assert graph.per_mailbox[("mona@example.com", "delta")] == 1
    assert graph.per_mailbox[("lena@example.com", "delta")] == 1


def test_the_request_budget_stops_a_mailbox_with_a_clear_error(graph: FakeGraph) -> None:
    now = [0.0]
    session = opened(graph_session(graph, budget=5, clock=lambda: now[0]))
    provider = build_session_provider(graph, session)
    for _ in range(5):
        provider.get(EventRef(MONA, "AAMkEV999999"))
    with pytest.raises(QuotaExceeded, match="budget"):
        provider.get(EventRef(MONA, "AAMkEV999999"))
    assert graph.requests["get"] == 5
    assert session.budget_used("lena@example.com") == 0  # other mailboxes are not charged
    now[0] += 601.0
    assert provider.get(EventRef(MONA, "AAMkEV999999")) is None
