"""The fence: a node that cannot prove it still holds its runs stops them.

A node proves it is alive only by beating (``engine/heartbeat.py``). When no beat has
succeeded for long enough that another node may soon take its runs over
(``rules.fencing``), the node gives each run up before that moment: it cancels the attempt
(command agents get SIGTERM then SIGKILL after their grace, python agents see
``ctx.cancelled``, http requests are dropped) and stops claiming and firing. When a beat
succeeds again it rejoins, without a restart.

The fence is a timer of its own, on the event loop: a beat that hangs (packets dropped, a
connection that never answers) does not hold it back. It counts from when the last
successful beat was *sent*, so a beat that hung and then succeeded proves nothing about
the time it hung.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import structlog

from agentcron.engine.waiting import Wakeup
from agentcron.executors.command import stop_grace_s
from agentcron.models import ClaimedRun
from agentcron.rules.fencing import (
    fence_after_s,
    past_fence,
    proved_throughout,
    seconds_to_fence,
)

log = structlog.get_logger(__name__)


class Fence:
    """Decides, on its own timer, which runs this node must give up and whether it is
    fenced. ``executing()`` lists the runs whose attempt is still executing here;
    ``give_up(run, why)`` cancels one (called once per attempt);
    ``on_change(fenced)`` is told when the node becomes fenced and when it rejoins."""

    name = "fence"

    def __init__(self, monotonic: Callable[[], float], node_id: str, *,
                 zombie_timeout_s: float, heartbeat_interval_s: float,
                 executing: Callable[[], list[ClaimedRun]],
                 give_up: Callable[[ClaimedRun, str], None],
                 on_change: Callable[[bool], None] = lambda fenced: None) -> None:
        self.monotonic = monotonic
        self.node_id = node_id
        self.zombie_timeout_s = zombie_timeout_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.executing = executing
        self.give_up = give_up
        self.on_change = on_change
        #: Monotonic time the last beat that succeeded was sent (registration counts).
        self.last_beat_sent = monotonic()
        #: Sending times of the beats that succeeded, for judging a claim answered late.
        self.beats: deque[float] = deque([self.last_beat_sent], maxlen=4096)
        self.fenced = False
        self.runs_given_up = 0
        self.wakeup = Wakeup()

    @property
    def node_fence_after_s(self) -> float:
        """When the node as a whole is fenced: as a run of an agent without a zombie
        timeout of its own and with nothing to wait for when stopped."""
        return fence_after_s(self.zombie_timeout_s, self.heartbeat_interval_s)

    def run_fence_after_s(self, run: ClaimedRun) -> float:
        """When ``run`` is given up: its agent's zombie timeout if set, else the node's (as
        the sweeper judges it), less a reserve for stopping it."""
        zombie = run.agent.zombie_timeout_s or self.zombie_timeout_s
        return fence_after_s(zombie, self.heartbeat_interval_s, stop_grace_s(run.agent))

    def still_held(self, since: float, run: ClaimedRun) -> bool:
        """Whether ``run``, claimed by a call made at ``since`` (monotonic) whose answer
        comes only now, can still be this node's: no stretch without a beat that succeeded
        long enough for another node to have taken it over since
        (``rules.fencing.proved_throughout``)."""
        return proved_throughout(self.beats, since, self.monotonic(),
                                 self.run_fence_after_s(run))

    def beat_succeeded(self, sent_at: float) -> None:
        """A beat sent at ``sent_at`` (monotonic) succeeded: the store has stamped this node
        alive at a moment no earlier than that. Rejoins if that lifts the fence."""
        if sent_at > self.last_beat_sent:
            self.last_beat_sent = sent_at
            self.beats.append(sent_at)
        if self.fenced and not past_fence(self.last_beat_sent, self.monotonic(),
                                          self.node_fence_after_s):
            self.fenced = False
            log.info("node_rejoined", node_id=self.node_id,
                     reason="a heartbeat succeeded again; claiming and firing resume")
            self.on_change(False)
        self.wakeup.set()

    def check(self) -> float:
        """Give up every executing run past its fence, and fence the node when its own
        fence has passed or it gave a run up. Returns how long until the next run or the
        node would be due, if no beat succeeds meanwhile."""
        now = self.monotonic()
        silent_s = now - self.last_beat_sent
        node_after = self.node_fence_after_s
        next_in = seconds_to_fence(self.last_beat_sent, now, node_after)
        gave_up = False
        for run in self.executing():
            after = self.run_fence_after_s(run)
            if past_fence(self.last_beat_sent, now, after):
                self.runs_given_up += 1
                gave_up = True
                self.give_up(run, f"node fenced: no heartbeat succeeded for {silent_s:.1f}s "
                                  f"(given up after {after:g}s, before the zombie timeout)")
            else:
                next_in = min(next_in, seconds_to_fence(self.last_beat_sent, now, after))
        if not self.fenced and (gave_up or past_fence(self.last_beat_sent, now, node_after)):
            self.fenced = True
            log.error("node_fenced", node_id=self.node_id, silent_s=round(silent_s, 1),
                      zombie_timeout_s=self.zombie_timeout_s,
                      reason="no heartbeat succeeded for nearly the zombie timeout (database "
                             "unreachable?): another node may soon take this node's runs "
                             "over, so it stopped them and stops claiming and firing until "
                             "a heartbeat succeeds again")
            self.on_change(True)
        return next_in

    async def loop(self, stopping: Callable[[], bool]) -> None:
        """Check at every deadline (and at least once per heartbeat interval, so a run
        started while fenced is given up promptly) until ``stopping()``."""
        while not stopping():
            next_in = self.check()
            if next_in <= 0:
                next_in = self.heartbeat_interval_s
            await self.wakeup.wait(min(next_in, self.heartbeat_interval_s))
