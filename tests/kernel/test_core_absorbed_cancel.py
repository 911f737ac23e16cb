"""The core does not hand an actor the cancel the router's replace fallback makes: a new order follows it, and
an actor told "cancelled" would take its intent for over (and perhaps send another)."""

from __future__ import annotations

from typing import Any

from domain.orders import OrderStatus, OrderUpdated
from tests.kernel.test_core import T0, make_core


def _cancelled(order_id: str) -> OrderUpdated:
    return OrderUpdated(order_id, f"oe-hedger-s1-close-1-{order_id}", OrderStatus.CANCELED, 0.0, 1.0, T0, T0,
                        "hedger", "hedger-s1", "hedger-s1-close-1")


def test_a_cancel_the_router_redoes_as_a_new_order_never_reaches_the_actor() -> None:
    core, actor, _ = make_core()
    seen: list[Any] = []
    actor.on_order_update = seen.append  # type: ignore[method-assign,assignment]
    core.start()
    core.router._retiring.add("ord-old")  # the fallback is cancelling it, a new order will follow
    core.on_order_update(_cancelled("ord-old"))
    assert seen == []
    core.on_order_update(_cancelled("ord-other"))  # any other cancel is the actor's news as before
    assert [u.order_id for u in seen] == ["ord-other"]
