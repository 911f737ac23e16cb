"""Service-layer costs on the hot path: metrics updates, publisher enqueue, journal writes, redaction.

Each figure is nanoseconds per operation, with a ratio against a baseline measured in the same run
(a plain ``dict`` counter increment, or ``deque.append``), so the numbers travel across machines.

    .venv/bin/python bench/service.py [--n 200000] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib import print_result

from domain.orders import OrderFilled, Side
from domain.views import PortfolioGreeks
from engine.service.journal import Journal
from engine.service.logging import Redactor
from engine.service.metrics import Metrics
from engine.service.publish import Publisher, fill_message


def _per_op_ns(fn, n: int) -> float:
    t0 = time.perf_counter_ns()
    fn(n)
    return (time.perf_counter_ns() - t0) / n


def _fill(i: int) -> OrderFilled:
    return OrderFilled(f"exec-{i}", "ord-1", "oe-1", "SPY261127C00600000", Side.BUY, 1.0, 1.25, i, i)


async def run(n: int) -> dict[str, float]:
    out: dict[str, float] = {}
    m = Metrics()
    plain: collections.Counter[str] = collections.Counter()

    def base_counter(k: int) -> None:
        for _ in range(k):
            plain["options"] += 1

    def metric_counter(k: int) -> None:
        inc = m.feed_messages.inc
        for _ in range(k):
            inc("options")

    def metric_hist(k: int) -> None:
        obs = m.reprice_seconds.observe
        for i in range(k):
            obs(i * 1e-9)

    out["baseline_dict_increment_ns"] = _per_op_ns(base_counter, n)
    out["metrics_labelled_inc_ns"] = _per_op_ns(metric_counter, n)
    out["metrics_histogram_observe_ns"] = _per_op_ns(metric_hist, n)
    t0 = time.perf_counter_ns()
    text = m.render()
    out["metrics_render_us"] = (time.perf_counter_ns() - t0) / 1e3
    assert "reprice_seconds_count" in text

    dq: collections.deque[object] = collections.deque()

    def base_append(k: int) -> None:
        for i in range(k):
            dq.append(i)

    pub = Publisher("redis://127.0.0.1:1/0", "bench", queue_bound=n + 1)  # never started: measures enqueue only
    fills = [_fill(i) for i in range(n)]
    g = PortfolioGreeks(1.0, 2.0, 3.0, 4.0)

    def enqueue(k: int) -> None:
        for i in range(k):
            pub.publish_fill(i + 1, fills[i], g, g)

    out["baseline_deque_append_ns"] = _per_op_ns(base_append, n)
    out["publisher_enqueue_fill_ns"] = _per_op_ns(enqueue, n)

    red = Redactor(["a-secret-value-1234567890", "PK" "ABCDEFGHIJKLMNOPQR"])
    msg = json.dumps(fill_message(1, fills[0], g, g))

    def redact(k: int) -> None:
        for _ in range(k):
            red.redact_str(msg)

    out["redact_fill_message_ns"] = _per_op_ns(redact, min(n, 50_000))

    with tempfile.TemporaryDirectory() as tmp:
        j = Journal.open(tmp)
        j.start()
        k = min(n, 20_000)

        def record(kk: int) -> None:
            for i in range(kk):
                j.record_fill(fills[i])

        out["journal_record_fill_loop_ns"] = _per_op_ns(record, k)
        t0 = time.perf_counter_ns()
        await j.flush()
        out["journal_fill_commit_throughput_per_s"] = k / ((time.perf_counter_ns() - t0) / 1e9 + 1e-12)
        from tests.service.helpers import make_intent

        t0 = time.perf_counter_ns()
        for i in range(200):
            await j.record_intent(make_intent(f"in-{i}"), f"oe-{i}")
        out["journal_durable_intent_us"] = (time.perf_counter_ns() - t0) / 200 / 1e3
        await j.aclose()
    out["ratio_metrics_inc_vs_dict"] = out["metrics_labelled_inc_ns"] / out["baseline_dict_increment_ns"]
    out["ratio_enqueue_vs_deque_append"] = out["publisher_enqueue_fill_ns"] / out["baseline_deque_append_ns"]
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200_000)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    return print_result(asyncio.run(run(args.n)), args.json, width=45, indent=2, value_format="12.2f")


if __name__ == "__main__":
    raise SystemExit(main())
