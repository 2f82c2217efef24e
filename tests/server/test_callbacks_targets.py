"""Callback URL checks: http(s) only, the allow-list, DNS answers pinned at delivery."""

from __future__ import annotations

import pytest

from signoff_server.callbacks.targets import CallbackTargets, TargetRefused, origin


def _resolver(answers: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    def resolve(host: str, _port: int) -> list[str]:
        if host not in answers:
            raise OSError("no such host")
        return answers[host]

    return resolve


def test_without_an_allow_list_any_http_url_goes() -> None:
    targets = CallbackTargets()
    assert not targets.restricted
    for url in ("http://localhost:5678/webhook-waiting/1", "https://10.0.0.7/x", "http://[::1]:9/"):
        assert targets.destination(url).url == url
    for url, reason in {
        "ftp://example.com/x": "http or https",
        "file:///etc/passwd": "http or https",
        "not a url": "http or https",
    }.items():
        with pytest.raises(TargetRefused, match=reason):
            targets.check(url)


def test_names_and_wildcards() -> None:
    targets = CallbackTargets(["Hooks.Example.com.", "*.agents.example.com"])
    targets.check("https://hooks.example.com/a")
    targets.check("https://HOOKS.example.com:8443/a")
    targets.check("https://n8n.agents.example.com/a")
    targets.check("https://a.b.agents.example.com/a")
    for url in (
        "https://agents.example.com/a",  # a wildcard covers sub-domains only
        "https://hooks.example.com.evil.net/a",
        "https://evilagents.example.com/a",
        "https://10.0.0.1/a",
    ):
        with pytest.raises(TargetRefused, match="not in the callback allow-list"):
            targets.check(url)


def test_networks_check_literal_addresses() -> None:
    targets = CallbackTargets(["10.0.0.0/8", "127.0.0.1", "fd00::/8"])
    targets.check("http://10.20.30.40/a")
    targets.check("http://127.0.0.1:9000/a")
    targets.check("http://[fd00::5]/a")
    targets.check("http://[::ffff:10.0.0.1]/a")  # IPv4-mapped: judged as the IPv4 address
    for url in ("http://127.0.0.2/a", "http://192.168.1.1/a", "http://[::1]/a"):
        with pytest.raises(TargetRefused):
            targets.check(url)


def test_names_allowed_by_network_are_resolved_and_pinned() -> None:
    targets = CallbackTargets(
        ["10.0.0.0/8"],
        resolver=_resolver(
            {
                "inside.corp": ["10.1.1.1", "10.1.1.2"],
                "mixed.corp": ["10.1.1.1", "203.0.113.9"],
            }
        ),
    )
    destination = targets.destination("https://inside.corp:8443/resume?sig=s3cret")
    assert destination.url == "https://10.1.1.1:8443/resume?sig=s3cret"
    assert destination.headers == {"host": "inside.corp:8443"}
    assert destination.extensions == {"sni_hostname": "inside.corp"}
    with pytest.raises(TargetRefused, match=r"resolves to 203\.0\.113\.9"):
        targets.check("https://mixed.corp/x")  # one address outside is enough to refuse
    with pytest.raises(TargetRefused, match="does not resolve"):
        targets.check("https://unknown.corp/x")


def test_malformed_allow_list_entries_fail_at_start() -> None:
    for entry in ("https://x.com", "*.", "ex ample.com", "10.0.0.0/33"):
        with pytest.raises(ValueError, match="allow-list entry"):
            CallbackTargets([entry])


def test_origin_never_shows_path_query_or_credentials() -> None:
    assert origin("https://u:p@hooks.example.com:8443/w/1?signature=abc") == (
        "https://hooks.example.com:8443"
    )
    assert origin("http://[::1]:9/x") == "http://[::1]:9"
