"""Reference model of the connection table (bit-exact with :mod:`openslb.hw.conntable`).

A hashed, ``conn_ways``-way table indexed by the low bits of the flow's Toeplitz hash; each way
holds one flow (:func:`~openslb.hw.spec.conn_entry_fields`).  The rules, shared with the RTL:

* An entry is *live* while its state is not FREE and its age (now − stamp, in ticks) is at most
  the timeout of its kind (CONN_TIMEOUT: half-open, established, closing, UDP).  A dead entry is
  a free way.
* A tracked frame (a VIP frame of a TCP or UDP flow whose ports are known) *hits* the first live
  way of its bucket with its digest and protocol.  A hit keeps the entry's real while that real
  is up; when it is down the frame takes the Maglev choice and the entry moves to that real.
* A miss follows the Maglev table.  It is *learned* only from a flow's first packet (TCP SYN
  without ACK, any UDP datagram): into the first dead way, else over the first half-open TCP
  entry (an eviction), else not at all (FULL).  Established and closing entries are never
  evicted, so a SYN flood can only churn through half-open entries.
* NAT flows are keyed by the client's address and port, their entries flagged ``nat`` with the
  VIP entry in the digest's low bits (:func:`~openslb.hw.spec.conn_entry_fields`).  A return
  frame (from the server side, :meth:`lookup` with ``ret``) hits the live NAT entry of its
  client address and port whatever the VIP, reads the VIP from it, and changes nothing.  So
  that this is unambiguous, a client has at most one NAT entry per address, port and protocol:
  a NAT flow learned while the client's port is still bound to another VIP takes over that
  entry (counted as an eviction), as a client that reuses a port has left the old connection.
* A real's *connections* are the live entries that name it (:meth:`ConnTable.conns`): what the
  ``leastconns`` metric compares and ``maxcon`` limits.  The hardware counts an entry until it
  is cleared (by the scrubber, or by a new flow written over it), so a timed-out entry counts
  there until the scrubber's walk reaches it (docs/pipeline.md, "Connection-aware metrics");
  the two agree once the scrubber has passed since the last tick.
* A forwarded tracked frame refreshes its entry (stamp = now, TCP state per
  :func:`~openslb.hw.spec.conn_next_state`).  A dropped frame changes nothing.

Time is a tick count moved by :meth:`ConnTable.advance` (CONN_TICK, or CONN_TICK_CYCLES cycles
in the hardware).  The model keeps exact stamps; the hardware keeps 12 bits and its scrubber
clears every dead entry long before 4096 ticks have passed, so both agree.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from openslb.hw.spec import (CONN_TIMEOUT_DEFAULTS, TCP_ACK, TCP_SYN, ConnState, Params,
                             conn_next_state, conn_split, conn_timeout_index, nat_digest)

__all__ = ["ConnEntry", "ConnTable", "Lookup", "starts_flow"]


@dataclass
class ConnEntry:
    digest: int
    udp: bool
    real: int
    stamp: int
    state: ConnState
    nat: bool = False


@dataclass
class Lookup:
    """Where a tracked frame stands in the table."""
    bucket: int
    digest: int
    udp: bool
    hit_way: int | None
    nat: bool = False
    #: a live NAT entry of the same client address and port for another VIP (the way a NAT
    #: flow that is learned takes over)
    clash_way: int | None = None


class ConnTable:
    """The table's state and rules; :class:`~openslb.model.pipeline.Appliance` drives it."""

    def __init__(self, params: Params) -> None:
        self.params = params
        self.enabled = False
        self.timeouts = {k: v for k, v in CONN_TIMEOUT_DEFAULTS.items()}
        self.now = 0
        self._counts: Counter[int] = Counter()
        self._counted_at: tuple | None = None     # (now, timeouts) the counts were made for
        self.flush()

    def flush(self) -> None:
        """Empty every way (CONN_FLUSH)."""
        p = self.params
        self.buckets: list[list[ConnEntry | None]] = [
            [None] * p.conn_ways for _ in range(p.conn_buckets)]
        self._counted_at = None

    def conns(self, real: int) -> int:
        """Live entries that name ``real`` (its current connections)."""
        key = (self.now, tuple(sorted(self.timeouts.items())))
        if self._counted_at != key:
            # time moved or the timeouts changed: entries may have died, so count afresh
            self._counts = Counter(e.real for ways in self.buckets for e in ways
                                   if self.live(e))
            self._counted_at = key
        return self._counts[real]

    def advance(self, ticks: int) -> None:
        """Move connection time on by ``ticks`` (CONN_TICK)."""
        self.now += ticks

    def live(self, entry: ConnEntry | None) -> bool:
        if entry is None or entry.state == ConnState.FREE:
            return False
        return self.now - entry.stamp <= self.timeouts[conn_timeout_index(entry.state, entry.udp)]

    def lookup(self, hash32: int, udp: bool, nat: bool = False, vip: int = 0,
               ret: bool = False) -> Lookup:
        """Find a frame's entry.  ``hash32`` is its key: the flow hash (DSR) or the client
        key (``nat``: a NAT service's frame with its VIP entry ``vip``, or with ``ret`` a return
        frame, which matches any VIP)."""
        p = self.params
        bucket, digest = conn_split(hash32, p)
        if nat:
            digest = nat_digest(digest, vip, p)
        high = ~((1 << p.vip_bits) - 1)
        look = Lookup(bucket, digest, udp, None, nat)
        for way, entry in enumerate(self.buckets[bucket]):
            if not self.live(entry) or entry.udp != udp or entry.nat != nat:
                continue
            if entry.digest == digest or (ret and (entry.digest ^ digest) & high == 0):
                look.hit_way = way
                return look
            if nat and (entry.digest ^ digest) & high == 0 and look.clash_way is None:
                look.clash_way = way
        return look

    def vip_of(self, look: Lookup) -> int:
        """The VIP entry a NAT entry's digest holds."""
        return self.entry(look).digest & ((1 << self.params.vip_bits) - 1)

    def entry(self, look: Lookup) -> ConnEntry:
        assert look.hit_way is not None
        return self.buckets[look.bucket][look.hit_way]

    def update(self, look: Lookup, real: int, tcp_flags: int) -> str | None:
        """Record a forwarded tracked frame sent to ``real``.

        Returns what a miss did: ``"new"``, ``"evict"`` (learned over a half-open entry),
        ``"full"`` (not learned), or ``None`` (a hit, or a miss that does not start a flow).
        """
        ways = self.buckets[look.bucket]
        if look.hit_way is not None:
            entry = ways[look.hit_way]
            self._recount(entry.real, real)
            entry.real, entry.stamp = real, self.now
            if not look.udp:
                entry.state = conn_next_state(entry.state, tcp_flags)
            return None
        if not (look.udp or starts_flow(tcp_flags)):
            return None
        way, outcome = ((look.clash_way, "evict") if look.clash_way is not None
                        else self._victim(ways))
        if way is None:
            return "full"
        state = ConnState.OPEN if look.udp else conn_next_state(ConnState.FREE, tcp_flags)
        self._recount(ways[way].real if self.live(ways[way]) else None, real)
        ways[way] = ConnEntry(look.digest, look.udp, real, self.now, state, look.nat)
        return outcome

    def _recount(self, old: int | None, new: int) -> None:
        """Keep the counts current when one live entry (``old``: its real, None for none) is
        replaced by one for ``new`` (the counts are first brought up to date if time moved)."""
        self.conns(new)
        if old is not None:
            self._counts[old] -= 1
        self._counts[new] += 1

    def _victim(self, ways: list[ConnEntry | None]) -> tuple[int | None, str]:
        for way, entry in enumerate(ways):
            if not self.live(entry):
                return way, "new"
        for way, entry in enumerate(ways):
            if entry.state == ConnState.SYN and not entry.udp:
                return way, "evict"
        return None, "full"

    def flows(self) -> int:
        """Live entries."""
        return sum(self.live(e) for ways in self.buckets for e in ways)


def starts_flow(tcp_flags: int) -> bool:
    """A TCP packet that opens a flow: SYN without ACK."""
    return bool(tcp_flags & TCP_SYN) and not tcp_flags & TCP_ACK
