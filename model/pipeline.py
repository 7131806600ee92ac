"""Bit-exact reference model of the dispatch core (parser → classifier → hasher → selector →
rewriter → counters), the golden reference of every testbench.

``Appliance(config).process(frames)`` returns the frames that leave each port, the dropped frames
with their reasons, and every counter the hardware keeps, exactly as the RTL computes them.
"""

from __future__ import annotations

import dataclasses
from collections import Counter as Tally
from dataclasses import dataclass, field

import numpy as np

from openslb.hw import spec
from openslb.hw.spec import (DropReason, EgressPort, IngressPort, Metric, nat_checksum,
                             nat_checksum_part, rr_advance)
from openslb.model.config import ApplianceConfig, ip_int, mac_bytes
from openslb.model.conntable import ConnTable, starts_flow
from openslb.model.maglev import EMPTY
from openslb.model.toeplitz import key_windows

__all__ = ["Appliance", "Decision", "Parsed", "Result", "parse"]


def _be16(b: bytes, off: int) -> int:
    return b[off] << 8 | b[off + 1]


def _be32(b: bytes, off: int) -> int:
    return int.from_bytes(b[off:off + 4], "big")


@dataclass
class Parsed:
    """What the parser extracts from one frame (the metadata travelling beside the payload)."""
    length: int
    error: DropReason | None = None
    l3: int = spec.ETH_HEADER
    ethertype: int = 0
    kind: str = "none"  # arp / ipv4 / ipv6 / other / none (header incomplete)
    arp_request: bool = False
    arp_tpa: int = 0
    src: int = 0
    dst: int = 0
    proto: int = 0
    fragment: bool = False
    ports_known: bool = False
    sport: int = 0
    dport: int = 0
    tcp_flags: int = 0
    ihl: int = 5
    total: int = 0


def _ipv4_checksum_ok(header: bytes) -> bool:
    words = np.frombuffer(header, dtype=">u2").astype(np.uint32)
    total = int(words.sum())
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


def parse(frame: bytes, max_frame: int = spec.DEFAULT_PARAMS.max_frame) -> Parsed:
    """Parse one frame with the hardware's check order (docs/pipeline.md, "Drop rules")."""
    n = len(frame)
    p = Parsed(length=min(n, spec.LENGTH_SATURATE))
    if n > max_frame:
        p.error = DropReason.OVERSIZE
        return p
    if n < spec.ETH_HEADER:
        p.error = DropReason.RUNT
        return p
    et, l3 = _be16(frame, 12), spec.ETH_HEADER
    if et == spec.ETHERTYPE_VLAN:
        if n < spec.ETH_HEADER + spec.VLAN_TAG:
            p.error = DropReason.TRUNCATED
            return p
        et, l3 = _be16(frame, 16), spec.ETH_HEADER + spec.VLAN_TAG
    p.ethertype, p.l3 = et, l3
    if et == spec.ETHERTYPE_ARP:
        p.kind = "arp"
        if n < l3 + spec.ARP_BODY:
            p.error = DropReason.TRUNCATED
            return p
        p.arp_request = (_be16(frame, l3) == 1 and _be16(frame, l3 + 2) == spec.ETHERTYPE_IPV4
                         and frame[l3 + 4] == 6 and frame[l3 + 5] == 4
                         and _be16(frame, l3 + 6) == 1)
        p.arp_tpa = _be32(frame, l3 + 24)
        return p
    if et == spec.ETHERTYPE_IPV6:
        p.kind = "ipv6"
        return p
    if et != spec.ETHERTYPE_IPV4:
        p.kind = "other"
        return p
    p.kind = "ipv4"
    if n < l3 + spec.IPV4_MIN_HEADER:
        p.error = DropReason.TRUNCATED
        return p
    version, ihl = frame[l3] >> 4, frame[l3] & 0xF
    if version != 4 or ihl < 5:
        p.error = DropReason.BAD_IP_HEADER
        return p
    hl = 4 * ihl
    p.ihl = ihl
    if n < l3 + hl:
        p.error = DropReason.TRUNCATED
        return p
    total = p.total = _be16(frame, l3 + 2)
    if total < hl or l3 + total > n:
        p.error = DropReason.BAD_TOTLEN
        return p
    if not _ipv4_checksum_ok(frame[l3:l3 + hl]):
        p.error = DropReason.BAD_CSUM
        return p
    flags_frag = _be16(frame, l3 + 6)
    p.fragment = bool(flags_frag & 0x2000) or (flags_frag & 0x1FFF) != 0
    p.proto = frame[l3 + 9]
    p.src, p.dst = _be32(frame, l3 + 12), _be32(frame, l3 + 16)
    need = spec.L4_MIN_HEADER.get(p.proto)
    if need is not None and not p.fragment:
        if total < hl + need:
            p.error = DropReason.TRUNCATED
            return p
        l4 = l3 + hl
        p.ports_known = True
        p.sport, p.dport = _be16(frame, l4), _be16(frame, l4 + 2)
        if p.proto == spec.PROTO_TCP:
            p.tcp_flags = frame[l4 + 13]
    return p


@dataclass
class Decision:
    """What the pipeline does with one frame."""
    port: EgressPort | None            # None: dropped
    drop: DropReason | None = None
    frame: bytes = b""                 # the frame as it leaves (rewritten)
    vip: int | None = None
    real: int | None = None
    hash: int | None = None


@dataclass
class Result:
    outputs: list[tuple[EgressPort, bytes]] = field(default_factory=list)
    drops: list[tuple[int, DropReason]] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    vip_stats: dict[int, tuple[int, int]] = field(default_factory=dict)
    real_stats: dict[int, tuple[int, int]] = field(default_factory=dict)


class Appliance:
    """The reference model of one dispatch core programmed with ``config``.

    State (counters and per-VIP / per-real statistics) accumulates over :meth:`process` calls,
    as in the hardware.  Change the health of a real with :meth:`set_up`.
    """

    def __init__(self, config: ApplianceConfig) -> None:
        config.validate()
        self.config = config
        enabled = [v for v in config.virts.values() if v.enabled]
        self.load(
            params=config.params, own_mac=mac_bytes(config.own_mac), own_ip=ip_int(config.own_ip),
            rss_key=config.rss_key, table_size=config.table_size,
            tables={g: config.table(g) for g in config.groups},
            health=config.health_mask(),
            real_macs={r.index: mac_bytes(r.mac) for r in config.reals.values()},
            vip_table=[(v.index, ip_int(v.vip), v.proto, v.port, v.group)
                       for v in sorted(config.virts.values(), key=lambda v: v.index)
                       if v.enabled],
            backups={g.index: g.backup for g in config.groups.values() if g.backup is not None},
            miss_to_host=config.miss_to_host, conn_enabled=config.conn.enabled,
            conn_timeouts=config.conn.timeouts(), pbind_timeout=config.conn.pbind,
            pbind_prefix=config.conn.pmask // 8,
            vip_pbind={v.index: v.pbind_per_port for v in enabled if v.pbind},
            real_ips={r.index: ip_int(r.ip) for r in config.reals.values() if r.ip},
            vip_nat={v.index: v.rport or 0 for v in enabled if v.mode == spec.Mode.NAT},
            vip_addr={v.index: (ip_int(v.vip), v.port) for v in enabled},
            client_gw_mac=mac_bytes(config.client_gw_mac),
            group_metric={g.index: Metric(g.metric) for g in config.groups.values()},
            members={g: config.members(g) for g in config.groups},
            real_limits={r.index: (r.maxcon, r.weight) for r in config.reals.values()})
        self.counters: Tally[str] = Tally({name: 0 for name in spec.COUNTERS})
        self.vip_stats: dict[int, list[int]] = {}
        self.real_stats: dict[int, list[int]] = {}

    def load(self, *, params, own_mac: bytes, own_ip: int, rss_key: bytes, table_size: int,
             tables: dict, health: int, real_macs: dict, vip_table: list, backups: dict,
             miss_to_host: bool, conn_enabled: bool = False,
             conn_timeouts: dict | None = None, pbind_timeout: int = 0,
             pbind_prefix: int = 4, vip_pbind: dict | None = None,
             real_ips: dict | None = None, vip_nat: dict | None = None,
             vip_addr: dict | None = None, client_gw_mac: bytes = bytes(6),
             group_metric: dict | None = None, real_limits: dict | None = None,
             members: dict | None = None) -> None:
        """Set the whole programmed state (what the registers hold), keeping the counters and
        the connection table's entries.

        ``vip_table``: ``(index, ip, proto, port or None, group)`` of the enabled entries;
        ``vip_pbind``: entry → per port (bool) of the entries with persistence, whose bindings
        are keyed by the first ``pbind_prefix`` bytes of the client address;
        ``tables``: group → slots (real indices; :data:`EMPTY` or 0 where unprogrammed);
        ``real_ips``: real → IPv4 address (NAT; 0 where unprogrammed);
        ``vip_nat``: entry → rport (0: the frame's port) of the NAT services;
        ``vip_addr``: entry → (VIP, port or None for any port) as VIP_IP / VIP_SERVICE hold it,
        for every entry a NAT connection may name (a return frame's new source; entries not
        given read as address 0, port 0);
        ``client_gw_mac``: destination MAC of reverse-NAT frames;
        ``group_metric``: group → :class:`~openslb.hw.spec.Metric` (default HASH);
        ``real_limits``: real → (maxcon, weight) as REAL_LIMIT holds them (default (0, 0));
        ``members``: group → the reals in its table (MEMBER_DATA), where new flows spill over.

        Loading (a COMMIT) puts every round-robin group's pointer back on slot 0.
        """
        self.params = params
        self.own_mac = own_mac
        self.own_ip = own_ip
        self.windows = key_windows(rss_key)
        self.table_size = table_size
        self.tables = tables
        self.health = health
        self.real_macs = real_macs
        # the VIP table as the hardware holds it: enabled entries, lowest index first
        self.vip_table = [entry[:4] for entry in sorted(vip_table)]
        self.vip_groups = {entry[0]: entry[4] for entry in vip_table}
        self.backups = backups
        self.miss_to_host = miss_to_host
        self.arp_targets = {self.own_ip} | {ip for _, ip, _, _ in self.vip_table}
        if getattr(self, "conn", None) is None or self.conn.params != params:
            self.conn = ConnTable(params)
        # (a stateless core tracks nothing, whatever CONN_CTRL holds)
        self.conn.enabled = conn_enabled and params.stateful
        if conn_timeouts is not None:
            self.conn.timeouts = dict(conn_timeouts)
        # client bindings: a table like the connection table, every entry a "UDP" one
        if getattr(self, "persist", None) is None or self.persist.params.pbind_buckets != params.pbind_buckets:
            self.persist = ConnTable(dataclasses.replace(params, conn_buckets=params.pbind_buckets))
        self.persist.timeouts = {kind: pbind_timeout for kind in spec.ConnTimeout}
        self.vip_pbind = dict(vip_pbind or {})
        self.pbind_prefix = pbind_prefix
        self.real_ips = dict(real_ips or {})
        # (a stateless core has no NAT: a NAT service is forwarded as DSR)
        self.vip_nat = dict(vip_nat or {}) if params.stateful else {}
        self.vip_addr = dict(vip_addr or {})
        self.client_gw_mac = client_gw_mac
        self.group_metric = dict(group_metric or {})
        self.members = {g: set(reals) for g, reals in (members or {}).items()}
        if real_limits is not None or not hasattr(self, "real_limits"):
            self.real_limits = dict(real_limits or {})
        self.rr_pointer: dict[int, int] = {}

    # -- state changes the management plane makes ------------------------------------------
    def advance(self, ticks: int) -> None:
        """Move connection time on (CONN_TICK): connection entries and client bindings age."""
        self.conn.advance(ticks)
        self.persist.advance(ticks)

    def flush_connections(self) -> None:
        """CONN_FLUSH: forget every connection and every client binding."""
        self.conn.flush()
        self.persist.flush()

    def set_up(self, real: int, up: bool) -> None:
        """Flip a real's health-mask bit (takes effect for the next frame)."""
        self.health = self.health | (1 << real) if up else self.health & ~(1 << real)

    # -- the blocks --------------------------------------------------------------------------
    def hash_of(self, p: Parsed) -> int:
        """Toeplitz over src, dst and (when known) the ports; fragments and ICMP use zeros."""
        return self._toeplitz(p.src, p.dst, p.sport if p.ports_known else 0,
                              p.dport if p.ports_known else 0)

    def pbind_key(self, p: Parsed, prefix_bytes: int, per_port: bool) -> int:
        """The key of a client binding: Toeplitz over the client prefix, the VIP and (per port)
        the service port: what the hardware XORs from the hasher's partial sums."""
        return self._toeplitz(p.src & spec.pbind_prefix_mask(prefix_bytes), p.dst, 0,
                              p.dport if per_port and p.ports_known else 0)

    def client_key(self, p: Parsed, ret: bool) -> int:
        """A NAT flow's connection key: Toeplitz over the client address and port alone, in the
        source fields (a return frame's destination is its client)."""
        addr, port = (p.dst, p.dport) if ret else (p.src, p.sport)
        return self._toeplitz(addr, 0, port if p.ports_known else 0, 0)

    def _toeplitz(self, src: int, dst: int, sport: int, dport: int) -> int:
        data = (src.to_bytes(4, "big") + dst.to_bytes(4, "big") + sport.to_bytes(2, "big")
                + dport.to_bytes(2, "big"))
        bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8)).astype(bool)
        return int(np.bitwise_xor.reduce(self.windows[:96][bits], initial=np.uint32(0)))

    def match_vip(self, p: Parsed) -> int | None:
        """Lowest-numbered enabled entry matching dst IP, protocol and port (or any port).

        Fragments and protocols without ports match on IP and protocol alone, so every fragment
        of a datagram meets the same entry (and, hashed on addresses only, the same real).
        """
        for index, ip, proto, port in self.vip_table:
            if ip != p.dst or proto != p.proto:
                continue
            if port is None or not p.ports_known or port == p.dport:
                return index
        return None

    def is_up(self, real: int) -> bool:
        return bool(self.health >> real & 1)

    def full(self, real: int) -> bool:
        """``real`` is at its connection limit (REAL_LIMIT.maxcon, 0 = none)."""
        maxcon = self.real_limits.get(real, (0, 0))[0]
        return maxcon != 0 and self.conn.conns(real) >= maxcon

    def _slot(self, group: int, index: int) -> int:
        table = self.tables.get(group)
        real = int(table[index]) if table is not None else EMPTY
        return 0 if real == EMPTY else real  # unprogrammed slots read as real 0

    def _less_loaded(self, a: int, b: int) -> bool:
        """Real ``a`` has fewer connections per weight than ``b`` (cross-multiplied, as the
        hardware compares them; a tie is not less)."""
        wa, wb = (self.real_limits.get(r, (0, 0))[1] for r in (a, b))
        return self.conn.conns(a) * wb < self.conn.conns(b) * wa

    def select(self, group: int, h: int, fresh: bool = False,
               full_seen: bool = False) -> tuple[int | None, DropReason]:
        """The real of a frame that no connection entry or binding decides.

        Two candidates, then the group backup: the first that is up and, for a new flow
        (``fresh``), not at its connection limit.  The candidates are the Maglev slot of the
        hash and the rehash slot; a new flow of a ``ROUNDROBIN`` group takes the group's pointer
        slot and the one after (and moves the pointer on), of a ``LEASTCONNS`` group the less
        loaded of its two slots when both can take it.  A new flow that a full real turned
        away (a candidate, or its binding: ``full_seen``) and that neither candidate can take
        spills over to the group's lowest-numbered real with room, before the backup.  With
        none: ``MAXCON`` when a real that was up was skipped as full, else ``NO_REAL``.
        """
        metric = self.group_metric.get(group, Metric.HASH) if fresh else Metric.HASH
        m = self.table_size
        if metric == Metric.ROUNDROBIN:
            pointer = self.rr_pointer.get(group, 0)
            slots = [pointer, (pointer + 1) % m]
        else:
            slots = list(spec.maglev_indices(h, m))
        candidates = [self._slot(group, index) for index in slots]
        backup = self.backups.get(group)
        if backup is not None:
            candidates.append(backup)
        up = [self.is_up(r) for r in candidates]
        full = [fresh and self.full(r) for r in candidates]
        ok = [u and not f for u, f in zip(up, full)]
        if metric == Metric.ROUNDROBIN:
            self.rr_pointer[group] = rr_advance(slots[0], ok[0], m)
        if metric == Metric.LEASTCONNS and ok[0] and ok[1] and self._less_loaded(
                candidates[1], candidates[0]):
            return candidates[1], DropReason.NO_REAL
        for real, usable in zip(candidates[:2], ok):
            if usable:
                return real, DropReason.NO_REAL
        # a new flow turned away by a full real spills over to the group's lowest-numbered
        # real that is up and has room, before the backup
        if fresh and (full_seen or any(up[k] and full[k] for k in range(2))):
            spill = self._spill(group)
            if spill is not None:
                return spill, DropReason.NO_REAL
        full_seen = full_seen or any(u and f for u, f in zip(up, full))
        if backup is not None and ok[2]:
            return backup, DropReason.NO_REAL
        return None, DropReason.MAXCON if full_seen else DropReason.NO_REAL

    def _spill(self, group: int) -> int | None:
        """The lowest-numbered real in the group's table that is up and below its limit."""
        room = [r for r in self.members.get(group, ()) if self.is_up(r) and not self.full(r)]
        return min(room, default=None)

    def arp_reply(self, frame: bytes, l3: int) -> bytes:
        out = bytearray(frame)
        out[0:6] = frame[6:12]
        out[6:12] = self.own_mac
        out[l3 + 6:l3 + 8] = b"\x00\x02"
        out[l3 + 8:l3 + 14] = self.own_mac
        out[l3 + 14:l3 + 18] = frame[l3 + 24:l3 + 28]
        out[l3 + 18:l3 + 24] = frame[l3 + 8:l3 + 14]
        out[l3 + 24:l3 + 28] = frame[l3 + 14:l3 + 18]
        return bytes(out)

    def nat_rewrite(self, frame: bytes, p: Parsed, new_ip: int, new_port: int,
                    ret: bool) -> bytearray:
        """Rewrite the destination (``ret``: the source) address and, when the frame carries
        its L4 header, port, updating the IPv4 and the TCP/UDP checksums incrementally
        (RFC 1624) with the hardware's arithmetic (:func:`~openslb.hw.spec.nat_checksum`).
        A UDP checksum of 0 (none) stays 0; a TCP checksum outside the segment (a header cut
        short of 20 bytes) is left alone."""
        out = bytearray(frame)
        l3, l4 = p.l3, p.l3 + 4 * p.ihl
        ip_at, port_at = (l3 + 12, l4) if ret else (l3 + 16, l4 + 2)
        old_ip, old_port = (p.src, p.sport) if ret else (p.dst, p.dport)
        old_words, new_words = [old_ip >> 16, old_ip & 0xFFFF], [new_ip >> 16, new_ip & 0xFFFF]
        part = nat_checksum_part(_be16(frame, l3 + 10), old_words)
        out[l3 + 10:l3 + 12] = nat_checksum(part, new_words).to_bytes(2, "big")
        out[ip_at:ip_at + 4] = new_ip.to_bytes(4, "big")
        if p.ports_known:
            udp = p.proto == spec.PROTO_UDP
            csum_at = l4 + (6 if udp else 16)
            old = _be16(frame, csum_at) if csum_at + 2 <= len(frame) else 0
            if (old != 0 if udp else p.total >= 4 * p.ihl + 20):
                part = nat_checksum_part(old, old_words + [old_port])
                out[csum_at:csum_at + 2] = nat_checksum(part, new_words + [new_port],
                                                        udp).to_bytes(2, "big")
            out[port_at:port_at + 2] = new_port.to_bytes(2, "big")
        return out

    def decide(self, frame: bytes, port: IngressPort = IngressPort.CLIENT) -> Decision:
        """Run one frame, received on ``port``, through the pipeline and update the counters."""
        c = self.counters
        p = parse(frame, self.params.max_frame)
        from_server = port == IngressPort.SERVER
        c["RX_FRAMES"] += 1
        c["RX_BYTES"] += p.length
        c["RX_SERVER"] += from_server
        if p.kind != "none":
            c[f"RX_{p.kind.upper()}"] += 1
        if p.error is not None:
            return self._drop(p.error)
        if p.kind == "ipv4" and p.fragment:
            c["RX_FRAGMENTS"] += 1
        if p.kind == "arp" and p.arp_request and p.arp_tpa in self.arp_targets:
            # answered on the side it was asked from (the reals ask for their NAT gateway)
            out_port = EgressPort.SERVER if from_server else EgressPort.CLIENT
            c[f"TX_{out_port.name}"] += 1
            return Decision(out_port, frame=self.arp_reply(frame, p.l3))
        if from_server and p.ports_known and p.proto in (spec.PROTO_TCP, spec.PROTO_UDP):
            return self._reverse_nat(frame, p)
        vip = self.match_vip(p) if p.kind == "ipv4" and not from_server else None
        if vip is None:
            if self.miss_to_host:
                c["TX_HOST"] += 1
                return Decision(EgressPort.HOST, frame=bytes(frame))
            return self._drop(DropReason.NON_VIP)
        nat = vip in self.vip_nat
        if nat and p.fragment:
            return self._drop(DropReason.NAT_FRAGMENT)
        h = self.hash_of(p)
        look = bind = None
        real = None
        fresh = full_seen = False
        tracked = (self.conn.enabled and p.ports_known
                   and p.proto in (spec.PROTO_TCP, spec.PROTO_UDP))
        if tracked:
            udp = p.proto == spec.PROTO_UDP
            # 1. the connection's own entry, while its real is up
            look = self.conn.lookup(self.client_key(p, False) if nat else h,
                                    udp=udp, nat=nat, vip=vip)
            c["CONN_HIT" if look.hit_way is not None else "CONN_MISS"] += 1
            if look.hit_way is not None and self.is_up(self.conn.entry(look).real):
                real = self.conn.entry(look).real
            # a new flow: the group's metric chooses, and reals at their limit are skipped
            fresh = real is None and (udp or starts_flow(p.tcp_flags))
            # 2. the client's binding (pbind services), while its real is up (and, for a new
            # flow, below its limit)
            if vip in self.vip_pbind:
                key = self.pbind_key(p, self.pbind_prefix, self.vip_pbind[vip])
                bind = self.persist.lookup(key, udp=True)
                if bind.hit_way is not None:
                    c["PBIND_HIT"] += 1
                    bound = self.persist.entry(bind).real
                    if real is None and self.is_up(bound):
                        if fresh and self.full(bound):
                            full_seen = True
                        else:
                            real = bound
        # 3. the group's candidates (Maglev slots, or the metric's), then its backup
        reason = DropReason.NO_REAL
        if real is None:
            real, reason = self.select(self.vip_groups[vip], h, fresh, full_seen)
        if real is None:
            return self._drop(reason, vip=vip, h=h)
        if look is not None:
            outcome = self.conn.update(look, real, p.tcp_flags)
            if outcome is not None:
                c[f"CONN_{outcome.upper()}"] += 1
                if outcome == "evict":
                    c["CONN_NEW"] += 1
        if bind is not None:
            outcome = self.persist.update(bind, real, 0)
            if outcome is not None:
                c[f"PBIND_{outcome.upper()}"] += 1
        c["TX_SERVER"] += 1
        for stats, key in ((self.vip_stats, vip), (self.real_stats, real)):
            entry = stats.setdefault(key, [0, 0])
            entry[0] += 1
            entry[1] += p.length
        body = frame[12:]
        if nat:
            rport = self.vip_nat[vip] or p.dport
            body = self.nat_rewrite(frame, p, self.real_ips.get(real, 0), rport, False)[12:]
        out = self.real_macs.get(real, b"\x00" * 6) + self.own_mac + bytes(body)
        return Decision(EgressPort.SERVER, frame=out, vip=vip, real=real, hash=h)

    def _reverse_nat(self, frame: bytes, p: Parsed) -> Decision:
        """A TCP/UDP frame from the server side: the return traffic of a NAT connection gets the
        VIP and service port as its source and goes to the clients' next hop."""
        c = self.counters
        if not self.conn.enabled:
            return self._drop(DropReason.NO_CONN)
        look = self.conn.lookup(self.client_key(p, True), udp=p.proto == spec.PROTO_UDP,
                                nat=True, ret=True)
        c["CONN_HIT" if look.hit_way is not None else "CONN_MISS"] += 1
        if look.hit_way is None:
            return self._drop(DropReason.NO_CONN)
        vip = self.conn.vip_of(look)
        vip_ip, vport = self.vip_addr.get(vip, (0, 0))
        body = self.nat_rewrite(frame, p, vip_ip, p.sport if vport is None else vport, True)
        c["TX_CLIENT"] += 1
        c["TX_RNAT"] += 1
        out = self.client_gw_mac + self.own_mac + bytes(body[12:])
        return Decision(EgressPort.CLIENT, frame=out, vip=vip, real=self.conn.entry(look).real)

    def _drop(self, reason: DropReason, vip: int | None = None, h: int | None = None) -> Decision:
        self.counters[f"DROP_{reason.name}"] += 1
        return Decision(None, drop=reason, vip=vip, hash=h)

    def process(self, frames: list[bytes], ports: list[IngressPort] | None = None) -> Result:
        """Run frames in order (received on ``ports``, default all from the clients); returns
        outputs, drops and the counters after the last one."""
        result = Result()
        for i, frame in enumerate(frames):
            d = self.decide(bytes(frame), ports[i] if ports else IngressPort.CLIENT)
            result.decisions.append(d)
            if d.port is None:
                result.drops.append((i, d.drop))
            else:
                result.outputs.append((d.port, d.frame))
        result.counters = {k: self.counters[k] for k in spec.COUNTERS}
        result.vip_stats = {k: (v[0], v[1]) for k, v in self.vip_stats.items()}
        result.real_stats = {k: (v[0], v[1]) for k, v in self.real_stats.items()}
        return result
