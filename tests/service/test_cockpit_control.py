"""The dashboard's control rules without sockets: tokens, CSRF tokens and confirmations (engine/service/cockpit)."""

from __future__ import annotations

import base64

from engine.service.cockpit.control import CONFIRM_TTL_S, CSRF_TTL_S, Control, cross_site, presented_token
from engine.service.secrets import Secret


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_confirmation_is_for_one_action_spent_once_and_expires() -> None:
    clock = Clock()
    control = Control(Secret("tok"), now=clock)
    cid = control.request("halt")
    assert not control.confirm("flatten", cid)
    assert not control.confirm("halt", cid), "a wrong action spends it"
    cid = control.request("halt")
    assert control.confirm("halt", cid)
    assert not control.confirm("halt", cid)
    cid = control.request("halt")
    clock.t += CONFIRM_TTL_S + 0.1
    assert not control.confirm("halt", cid)


def test_csrf_tokens_are_issued_here_and_expire() -> None:
    clock = Clock()
    control = Control(Secret("tok"), now=clock)
    csrf = control.issue_csrf()
    assert control.csrf_ok(csrf) and not control.csrf_ok("made-up") and not control.csrf_ok(None)
    clock.t += CSRF_TTL_S + 0.1
    assert not control.csrf_ok(csrf)


def test_token_from_header_bearer_or_basic_and_none_configured_is_read_only() -> None:
    basic = "Basic " + base64.b64encode(b"anyone:tok").decode()
    assert presented_token({"X-Engine-Token": "tok"}) == "tok"
    assert presented_token({"Authorization": "Bearer tok"}) == "tok"
    assert presented_token({"Authorization": basic}) == "tok"
    assert presented_token({"Authorization": "Basic !!"}) is None
    assert Control(Secret("tok")).token_ok("tok") and not Control(Secret("tok")).token_ok("to")
    read_only = Control(None)
    assert not read_only.enabled and not read_only.token_ok("") and not read_only.token_ok("tok")


def test_cross_site_requests_are_recognised() -> None:
    assert cross_site({"Origin": "http://evil.example"}, "127.0.0.1:9464")
    assert cross_site({"Sec-Fetch-Site": "cross-site"}, "127.0.0.1:9464")
    assert not cross_site({"Origin": "http://127.0.0.1:9464", "Sec-Fetch-Site": "same-origin"}, "127.0.0.1:9464")
    assert not cross_site({}, "127.0.0.1:9464")
