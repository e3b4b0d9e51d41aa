"""The engine's gateway: each request's claim (deadline, priority, caller) and the cap on named callers."""

from __future__ import annotations

from rerank_server.engine import Caller, Engine, ModelRegistry
from rerank_server.engine.callers import OTHERS, CallerNames
from rerank_server.engine.settings import AdmissionConfig


def test_a_request_without_a_deadline_gets_the_default_and_is_refused_as_overload() -> None:
    engine = Engine(ModelRegistry(), AdmissionConfig(default_deadline_s=120.0), clock=lambda: 1000.0)
    claim = engine.claim(Caller("team-a", 1, None))
    assert (claim.deadline, claim.priority, claim.tenant, claim.default_deadline) == (1120.0, 1, "team-a", True)
    own = engine.claim(Caller(timeout_s=5.0))
    assert (own.deadline, own.default_deadline) == (1005.0, False)


def test_max_request_time_caps_every_deadline() -> None:
    engine = Engine(ModelRegistry(), AdmissionConfig(default_deadline_s=120.0, max_request_time_s=30.0), clock=lambda: 0.0)
    assert engine.claim(Caller()).deadline == 30.0
    assert engine.claim(Caller(timeout_s=300.0)).deadline == 30.0
    assert engine.claim(Caller(timeout_s=2.0)).deadline == 2.0


def test_names_past_the_cap_share_one_turn_and_quiet_names_give_way() -> None:
    now = [0.0]
    names = CallerNames(cap=3, forget_s=60.0, clock=lambda: now[0])
    assert [names(n) for n in ("a", "b", "c", "d", "e")] == ["a", "b", "c", OTHERS, OTHERS]
    assert names("") == ""  # a caller that does not say stays so
    now[0] = 30.0
    assert names("a") == "a"  # in use: keeps its place
    now[0] = 70.0
    assert names("d") == "d"  # b has been quiet for a minute: d takes its place
    assert names("e") == "e"  # and c too
    assert names("f") == OTHERS  # a, d and e are in use
