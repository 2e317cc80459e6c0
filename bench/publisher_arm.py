"""The publisher arm of ``bench/overhead.py``: what ``Warden(app)`` costs a process that
publishes tasks (a web app), measured as its ``delay()`` rate with no worker running.

Each round runs one fresh client process per arm (plain, warden, alternating), each making
``N`` plain ``delay()`` calls (``python -m bench.apps delay N``); the headline is the median of
the per-round ratios of their rates. Warden's final flush of what is still buffered is timed
apart: a long-lived publisher does it on its flusher thread, whose cost during the loop *is*
in the measured rate (it competes for the GIL). After each run the queue and Warden's keys are
deleted, so every run starts from the same empty Redis.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Protocol

from bench.interval import decided, median_interval

#: Target from the issue: publisher rate with Warden at least 0.97 x plain (printed only).
TARGET_PUBLISHER = 0.97


class Runner(Protocol):
    """What the arm needs from ``overhead.Bench``."""

    def run_client(self, arm: str, mode: str, tasks: int) -> dict[str, Any]: ...

    def clear_queue(self) -> None: ...

    def delete_warden_keys(self) -> None: ...


@dataclass(slots=True)
class PublishRun:
    arm: str
    round: int
    tasks: int
    seconds: float
    cpu: float
    flush_seconds: float

    @property
    def rate(self) -> float:
        return self.tasks / self.seconds

    def as_dict(self) -> dict[str, Any]:
        return {"arm": self.arm, "round": self.round, "tasks": self.tasks,
                "seconds": self.seconds, "cpu": self.cpu, "flush_seconds": self.flush_seconds,
                "rate": self.rate}


def run_round(bench: Runner, round_no: int, tasks: int,
              arms: tuple[str, ...] = ("plain", "warden")) -> list[PublishRun]:
    out = []
    for arm in arms:
        data = bench.run_client(arm, "delay", tasks)
        out.append(PublishRun(arm, round_no, tasks, float(data["seconds"]), float(data["cpu"]),
                              float(data.get("flush_seconds", 0.0))))
        bench.clear_queue()
        bench.delete_warden_keys()
    return out


def summarise(runs: list[PublishRun]) -> dict[str, Any]:
    by_round: dict[int, dict[str, PublishRun]] = {}
    for r in runs:
        by_round.setdefault(r.round, {})[r.arm] = r
    pairs = [(v["plain"], v["warden"]) for _, v in sorted(by_round.items())
             if "plain" in v and "warden" in v]
    if not pairs:
        return {}
    rate_ratios = [w.rate / p.rate for p, w in pairs]
    cpu_ratios = [(w.cpu / w.tasks) / (p.cpu / p.tasks) for p, w in pairs]
    return {
        "rounds": len(pairs),
        "tasks": pairs[0][0].tasks,
        "rate": {"plain": statistics.median(p.rate for p, _ in pairs),
                 "warden": statistics.median(w.rate for _, w in pairs)},
        "us_per_delay": {"plain": statistics.median(p.seconds / p.tasks * 1e6 for p, _ in pairs),
                         "warden": statistics.median(w.seconds / w.tasks * 1e6
                                                     for _, w in pairs)},
        "cpu_us_per_delay": {"plain": statistics.median(p.cpu / p.tasks * 1e6 for p, _ in pairs),
                             "warden": statistics.median(w.cpu / w.tasks * 1e6
                                                         for _, w in pairs)},
        "final_flush_ms": statistics.median(w.flush_seconds * 1000 for _, w in pairs),
        "rate_ratio_per_round": rate_ratios,
        "rate_ratio_median": statistics.median(rate_ratios),
        "rate_ratio_interval": median_interval(rate_ratios),
        "cpu_ratio_median": statistics.median(cpu_ratios),
        "target": TARGET_PUBLISHER,
    }


def report_lines(summary: dict[str, Any]) -> list[str]:
    if not summary:
        return []
    ok = summary["rate_ratio_median"] >= TARGET_PUBLISHER
    us, cpu = summary["us_per_delay"], summary["cpu_us_per_delay"]
    return [
        f"publisher (delay() x {summary['tasks']}, no worker, {summary['rounds']} rounds): "
        f"plain {summary['rate']['plain']:,.0f}/s ({us['plain']:.1f} µs, CPU {cpu['plain']:.1f} "
        f"µs), warden {summary['rate']['warden']:,.0f}/s ({us['warden']:.1f} µs, CPU "
        f"{cpu['warden']:.1f} µs); final flush {summary['final_flush_ms']:.1f} ms",
        "publisher rate ratio per round: "
        + ", ".join(f"{r:.3f}" for r in summary["rate_ratio_per_round"]),
        f"publisher rate warden/plain (median): {summary['rate_ratio_median']:.4f}   target ≥ "
        f"{TARGET_PUBLISHER}   {'PASS' if ok else 'FAIL'}   (CPU per delay() ratio "
        f"{summary['cpu_ratio_median']:.3f})"
        + decided(summary["rate_ratio_interval"], TARGET_PUBLISHER),
    ]


__all__ = ["TARGET_PUBLISHER", "PublishRun", "report_lines", "run_round", "summarise"]
