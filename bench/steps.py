"""The timing of one ladder step, shared by every runner.

Jobs are anchored on a whole second ``anchor``; the warm-up runs from there, then the
measured window, then a grace period for late fires (see ``bench.counting``).
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Any

from bench.meter import CpuMeter


@dataclass(frozen=True)
class StepPlan:
    triggers: int
    duration_s: int
    warmup_s: int
    grace_s: float
    lead_in_s: float = 2.0

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> StepPlan:
        return cls(triggers=int(params["triggers"]), duration_s=int(params["duration_s"]),
                   warmup_s=int(params["warmup_s"]), grace_s=float(params["grace_s"]),
                   lead_in_s=float(params.get("lead_in_s", 2.0)))

    def anchor(self) -> int:
        """The first whole second jobs fire at, ``lead_in_s`` from now."""
        return math.ceil(time.time() + self.lead_in_s)

    def window(self, anchor: float) -> tuple[float, float]:
        start = anchor + self.warmup_s
        return start, start + self.duration_s

    def as_dict(self) -> dict[str, Any]:
        return {"triggers": self.triggers, "duration_s": self.duration_s,
                "warmup_s": self.warmup_s, "grace_s": self.grace_s}


def _until(ts: float) -> float:
    return max(0.0, ts - time.time())


async def measure_async(plan: StepPlan, anchor: float, meter: CpuMeter) -> dict[str, float]:
    """Wait through warm-up, meter the window, wait out the grace period."""
    start, end = plan.window(anchor)
    await asyncio.sleep(_until(start))
    await asyncio.to_thread(meter.start)
    await asyncio.sleep(_until(end))
    cpu = await asyncio.to_thread(meter.stop)
    await asyncio.sleep(_until(end + plan.grace_s))
    return cpu


def measure_sync(plan: StepPlan, anchor: float, meter: CpuMeter) -> dict[str, float]:
    start, end = plan.window(anchor)
    time.sleep(_until(start))
    meter.start()
    time.sleep(_until(end))
    cpu = meter.stop()
    time.sleep(_until(end + plan.grace_s))
    return cpu
