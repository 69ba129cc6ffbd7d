"""The breaker's state machine, once as a Lua script for the shared state and once in Python.

Both follow the same rules, and each transition is decided by exactly one caller:

- ``closed``: calls pass; ``threshold`` consecutive failures (or timeouts) open the circuit; a
  success resets the count.
- ``open``: calls are rejected until ``cooldown`` has passed since the circuit opened.
- ``half_open``: the first caller after the cool-down takes a probe lease; while the lease runs,
  every other caller is rejected (one probe at a time). The probe's success closes the circuit,
  its failure opens it for another cool-down. A probe that never reports (its instance crashed
  or timed out) loses its lease after ``probe_lease``, and the next caller probes instead.
- Results of calls that started before a transition (late successes or failures while open or
  half-open, from callers without the probe lease) change nothing.

The shared state is one hash, ``cb:{name}``; the braces make it a hash tag, so each script touches
a single Redis Cluster slot. Scripts take the time from Redis (``TIME``), so instances whose clocks
disagree still agree on when a cool-down ends.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

__all__ = ["ACQUIRE_SCRIPT", "RECORD_SCRIPT", "LocalState", "Outcome"]

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"

# Returns {verdict, wait_ms, failures, previous_state}; verdict is closed, open, half_open
# (rejected: a probe is out) or probe (this caller holds the lease).
ACQUIRE_SCRIPT = """
local now_parts = redis.call('TIME')
local now = now_parts[1] * 1000 + math.floor(now_parts[2] / 1000)
local fields = redis.call('HMGET', KEYS[1], 'state', 'until', 'failures')
local state = fields[1] or 'closed'
local until_ms = tonumber(fields[2]) or 0
if state == 'closed' then
  return {'closed', 0, tonumber(fields[3]) or 0, ''}
end
if now < until_ms then
  return {state, until_ms - now, 0, ''}
end
redis.call('HSET', KEYS[1], 'state', 'half_open', 'until', now + tonumber(ARGV[2]))
return {'probe', 0, 0, state}
"""

# ARGV: outcome (success|failure), threshold, cooldown_ms, probe (1|0).
# Returns {state, wait_ms, failures, previous_state}; previous_state is '' unless this call
# made the transition.
RECORD_SCRIPT = """
local now_parts = redis.call('TIME')
local now = now_parts[1] * 1000 + math.floor(now_parts[2] / 1000)
local fields = redis.call('HMGET', KEYS[1], 'state', 'until', 'failures')
local state = fields[1] or 'closed'
local until_ms = tonumber(fields[2]) or 0
local failures = tonumber(fields[3]) or 0
local probe = ARGV[4] == '1'
if state == 'half_open' and probe then
  if ARGV[1] == 'success' then
    redis.call('DEL', KEYS[1])
    return {'closed', 0, 0, 'half_open'}
  end
  redis.call('HSET', KEYS[1], 'state', 'open', 'until', now + tonumber(ARGV[3]), 'failures', 0)
  return {'open', tonumber(ARGV[3]), 0, 'half_open'}
end
if state ~= 'closed' then
  return {state, math.max(until_ms - now, 0), 0, ''}
end
if ARGV[1] == 'success' then
  if failures > 0 then
    redis.call('HDEL', KEYS[1], 'failures')
  end
  return {'closed', 0, 0, ''}
end
failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
if failures >= tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'until', now + tonumber(ARGV[3]), 'failures', 0)
  return {'open', tonumber(ARGV[3]), 0, 'closed'}
end
return {'closed', 0, failures, ''}
"""


@dataclass(frozen=True)
class Outcome:
    """What one decision found: the state, how long to wait, and the transition it made."""

    verdict: str
    wait: float
    failures: int
    previous: str

    @classmethod
    def from_script(cls, reply: list[object]) -> Outcome:
        """Read a script's reply (bytes or str, as the client decodes)."""
        verdict, wait_ms, failures, previous = (
            value.decode() if isinstance(value, bytes) else value for value in reply
        )
        return cls(str(verdict), int(str(wait_ms)) / 1000, int(str(failures)), str(previous))


class LocalState:
    """The same machine in process memory: the fallback while Redis cannot be reached."""

    def __init__(self, threshold: int, cooldown: float, probe_lease: float) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.probe_lease = probe_lease
        self.state = CLOSED
        self.until = 0.0
        self.failures = 0
        self._lock = threading.Lock()

    def acquire(self) -> Outcome:
        """What ``ACQUIRE_SCRIPT`` decides, on this instance's state."""
        with self._lock:
            now = time.monotonic()
            if self.state == CLOSED:
                return Outcome(CLOSED, 0.0, self.failures, "")
            if now < self.until:
                return Outcome(self.state, self.until - now, 0, "")
            previous, self.state, self.until = self.state, HALF_OPEN, now + self.probe_lease
            return Outcome("probe", 0.0, 0, previous)

    def record(self, success: bool, probe: bool) -> Outcome:
        """What ``RECORD_SCRIPT`` decides, on this instance's state."""
        with self._lock:
            now = time.monotonic()
            if self.state == HALF_OPEN and probe:
                if success:
                    self.state, self.failures = CLOSED, 0
                    return Outcome(CLOSED, 0.0, 0, HALF_OPEN)
                self.state, self.until, self.failures = OPEN, now + self.cooldown, 0
                return Outcome(OPEN, self.cooldown, 0, HALF_OPEN)
            if self.state != CLOSED:
                return Outcome(self.state, max(self.until - now, 0.0), 0, "")
            if success:
                self.failures = 0
                return Outcome(CLOSED, 0.0, 0, "")
            self.failures += 1
            if self.failures >= self.threshold:
                self.state, self.until, self.failures = OPEN, now + self.cooldown, 0
                return Outcome(OPEN, self.cooldown, 0, CLOSED)
            return Outcome(CLOSED, 0.0, self.failures, "")
