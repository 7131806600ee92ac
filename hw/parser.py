"""Header parser: Ethernet, 802.1Q, ARP, IPv4 (options, fragments, checksum), TCP/UDP ports.

Ports
-----
``i`` : In(stream of :func:`~openslb.hw.layouts.capture_layout`) — header window + length.
``o`` : Out(stream of :func:`~openslb.hw.layouts.meta_layout`) — parser fields, the flow
        hash and Maglev indices, and the action, filled in.
``key``, ``table_size``, ``pbind_prefix`` : In — passed to the :class:`~openslb.hw.hasher.Hasher`.
``vip_ip``, ``vip_service``, ``vip_group``, ``vip_pbind``, ``vip_rport``, ``own_ip`` : In —
        passed to the :class:`~openslb.hw.vipmatch.VipMatcher`.
``miss_to_host`` : In — passed to the :class:`~openslb.hw.classifier.Classifier`.

Stage 1 selects the L3 header behind an optional VLAN tag (flagged by the capture stage),
extracts the fields and the L4 ports behind the IPv4 options and adds the checksum words in
pairs; stage 2 adds those in four groups and does every length comparison; stage 3 adds the
four group sums; stage 4 checks the checksum and runs the check chain (docs/pipeline.md, "Drop
rules"), which is exactly :func:`openslb.model.pipeline.parse`; stage 5, the output register,
takes the record with the hasher's and the VIP matcher's results as the classifier
(combinational) completes it.  The hasher and the VIP matcher take their inputs from stage 1 (the
matcher loads its own copy of them with it) and run beside stages 2 to 4 (stages 2 to 5 advance
together), so none of the three adds latency.

NAT: stage 1 also picks the IPv4 and the L4 checksums and the L4 header's place, and gives the
hasher the tuple of a server-side frame with its ends swapped (client first, so that its client
key is the one its connection was learned under); stages 2 and 3 form the parser's halves of
the checksum updates (:func:`~openslb.hw.spec.nat_checksum_part`) for the destination (client
side) or the source (server side), two sums each in stage 2 and their total in stage 3; stage 5
picks the connection key (the flow hash, or for NAT the client key with the VIP entry in its
digest) and the new port (the service's rport).

Latency 5 cycles (at most two adder levels per stage), throughput one frame per cycle.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from openslb.hw import spec
from openslb.hw.classifier import Classifier
from openslb.hw.hasher import KEY_BITS, Hasher
from openslb.hw.layouts import (IHL_WORDS, L3_AT, capture_layout, l4_sel_bit, meta_layout,
                                tuple_layout)
from openslb.hw.picks import one_of
from openslb.hw.spec import DropReason, Params
from openslb.hw.vipmatch import VipMatcher

__all__ = ["Parser"]

L3_SPAN = 60 + 14 + 4   # the longest IPv4 header plus the L4 bytes the parser reads
#: Record fields only the connection table, the bindings and NAT read (0 in the stateless
#: profile).
STATEFUL_ONLY = ("nat", "ckey", "pkey", "new_port", "ip_part", "l4_part", "l4_word", "l4_fix",
                 "udp")
#: Record fields that the blocks beside the parser fill in stage 5.
BESIDE = ("vip_hit", "vip", "group", "arp_ours", "hash", "idx1", "idx2", "pbind", "pkey", "nat",
          "ckey", "new_port")


def _be(bytes_: list, start: int, n: int):
    """Big-endian value of ``n`` window bytes."""
    return Cat(*reversed(bytes_[start:start + n]))


class Parser(wiring.Component):
    LATENCY = 5  #: cycles from input to output register

    def __init__(self, params: Params) -> None:
        self.params = params
        super().__init__({
            "i": In(stream.Signature(capture_layout())),
            "o": Out(stream.Signature(meta_layout(params))),
            "key": In(KEY_BITS),
            "table_size": In(16),
            "vip_ip": In(32).array(params.n_vips),
            "vip_service": In(32).array(params.n_vips),
            "vip_group": In(32).array(params.n_vips),
            "vip_pbind": In(32).array(params.n_vips),
            "vip_rport": In(32).array(params.n_vips),
            "pbind_prefix": In(3),
            "own_ip": In(32),
            "miss_to_host": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        win = self.i.payload.window
        wb = [win[b] for b in range(spec.HEADER_WINDOW)]

        # ---- L3 behind an optional VLAN tag (the capture stage registered the tag's presence,
        # so this is one 2:1 multiplexer level in front of stage 1) ---------------------------
        s0 = Signal(data.StructLayout({
            "length": 16, "oversize": 1, "vlan": 1, "ethertype": 16, "eth_src": 48,
            "beats_m1": 16, "l3": data.ArrayLayout(8, L3_SPAN), "in_port": 1,
        }))
        vlan = self.i.payload.vlan
        for j in range(L3_SPAN):
            hi = wb[18 + j] if 18 + j < spec.HEADER_WINDOW else Const(0, 8)
            m.d.comb += s0.l3[j].eq(Mux(vlan, hi, wb[14 + j]))
        m.d.comb += [
            s0.length.eq(self.i.payload.length),
            s0.oversize.eq(self.i.payload.oversize),
            s0.beats_m1.eq(self.i.payload.beats_m1),
            s0.vlan.eq(vlan),
            s0.in_port.eq(self.i.payload.in_port),
            s0.ethertype.eq(Mux(vlan, _be(wb, 16, 2), _be(wb, 12, 2))),
            s0.eth_src.eq(_be(wb, 6, 6)),
        ]

        # ---- stage 1: fields, L4 ports behind the options, partial checksums, length checks ----
        s1 = Signal(data.StructLayout({
            "length": 16, "oversize": 1, "vlan": 1, "ethertype": 16,
            "version": 4, "ihl": 4, "flags_frag": 16, "proto": 8,
            "src": 32, "dst": 32, "sport": 16, "dport": 16, "tcp_flags": 8,
            "csum_parts": data.ArrayLayout(17, 15), "csum_use": 15,
            "eth_src": 48, "arp_ok": 1, "arp_sha": 48, "arp_spa": 32, "arp_tpa": 32,
            # the lengths the checks compare (stage 2 compares them)
            "beats_m1": 16, "total": 16, "hl": 6,
            "l3_hl": 7, "l3_total": 17, "hl_need": 7,   # sums precomputed for the compares
            "fragment": 1, "has_ports": 1, "is_udp": 1,
            # NAT: the port, the checksums and the L4 header's place; the hasher's tuple (a
            # frame from the server side is hashed with its ends swapped: client first)
            "in_port": 1, "ip_csum": 16, "tcp_csum": 16, "udp_csum": 16, "l4_word": 4,
            "htuple": tuple_layout(),
        }))
        s1_valid = Signal()
        l3 = [s0.l3[j] for j in range(L3_SPAN)]
        ihl = Signal(4)
        m.d.comb += ihl.eq(l3[0][0:4])

        # L4 bytes 0-3 (ports), 6-7 and 16-17 (the UDP and TCP checksums) and 13 (TCP flags)
        # behind 5..15 header words, behind a VLAN tag or not: each an AND-OR of the window's
        # bytes with the capture stage's one-hot register of the L4 header's place, so no
        # decode and no multiplexer select sits in front of the picks.
        def window_byte(j):
            return wb[j] if j < spec.HEADER_WINDOW else Const(0, 8)
        l4_sel = self.i.payload.l4_sel
        l4 = {k: Signal(8, name=f"l4b{k}") for k in (0, 1, 2, 3, 6, 7, 13, 16, 17)}
        for k, sig in l4.items():
            m.d.comb += sig.eq(one_of([(l4_sel[l4_sel_bit(tagged, words)],
                                        window_byte(l3_at + 4 * words + k))
                                       for tagged, l3_at in enumerate(L3_AT)
                                       for words in IHL_WORDS]))

        # One's-complement checksum over the IHL words of the header: pairs of 16-bit words
        # (one 32-bit header word each) here, masked by IHL and summed in four groups in stage 2,
        # the total in stage 3.
        words = [Signal(16, name=f"hw{k}") for k in range(30)]
        for k in range(30):
            m.d.comb += words[k].eq(_be(l3, 2 * k, 2))

        n = s0.length
        l3_off = Mux(s0.vlan, spec.ETH_HEADER + spec.VLAN_TAG, spec.ETH_HEADER)
        hl = Signal(6)
        m.d.comb += hl.eq(ihl * 4)
        total = Signal(16)
        m.d.comb += total.eq(_be(l3, 2, 2))
        flags_frag = Signal(16)
        m.d.comb += flags_frag.eq(_be(l3, 6, 2))
        fragment = Signal()
        m.d.comb += fragment.eq(flags_frag[13] | (flags_frag[0:13] != 0))
        l4_need = Signal(5)
        with m.Switch(l3[9]):
            m.d.comb += l4_need.eq(0)
            for proto, need in spec.L4_MIN_HEADER.items():
                with m.Case(proto):
                    m.d.comb += l4_need.eq(need)
        has_ports = Signal()
        m.d.comb += has_ports.eq((l4_need != 0) & ~fragment)

        next_s1 = Signal.like(s1)
        m.d.comb += [
            next_s1.length.eq(n),
            next_s1.oversize.eq(s0.oversize),
            next_s1.vlan.eq(s0.vlan),
            next_s1.ethertype.eq(s0.ethertype),
            next_s1.version.eq(l3[0][4:8]),
            next_s1.ihl.eq(ihl),
            next_s1.flags_frag.eq(flags_frag),
            next_s1.proto.eq(l3[9]),
            next_s1.src.eq(_be(l3, 12, 4)),
            next_s1.dst.eq(_be(l3, 16, 4)),
            # the ports as they stand (zeroed in stage 4 when the frame has none: the gate
            # would sit behind the protocol and fragment decodes in this stage)
            next_s1.sport.eq(Cat(l4[1], l4[0])),
            next_s1.dport.eq(Cat(l4[3], l4[2])),
            next_s1.tcp_flags.eq(l4[13]),
            next_s1.eth_src.eq(s0.eth_src),
            next_s1.arp_ok.eq((_be(l3, 0, 2) == 1) & (_be(l3, 2, 2) == spec.ETHERTYPE_IPV4)
                              & (l3[4] == 6) & (l3[5] == 4) & (_be(l3, 6, 2) == 1)),
            next_s1.arp_sha.eq(_be(l3, 8, 6)),
            next_s1.arp_spa.eq(_be(l3, 14, 4)),
            next_s1.arp_tpa.eq(_be(l3, 24, 4)),
            next_s1.beats_m1.eq(s0.beats_m1),
            next_s1.total.eq(total),
            next_s1.hl.eq(hl),
            next_s1.l3_hl.eq(l3_off + hl),
            next_s1.l3_total.eq(l3_off + total),
            next_s1.hl_need.eq(hl + l4_need),
            next_s1.fragment.eq(fragment),
            next_s1.is_udp.eq(l3[9] == spec.PROTO_UDP),
            next_s1.has_ports.eq(has_ports),
            next_s1.in_port.eq(s0.in_port),
            next_s1.ip_csum.eq(_be(l3, 10, 2)),
            next_s1.udp_csum.eq(Cat(l4[7], l4[6])),
            next_s1.tcp_csum.eq(Cat(l4[17], l4[16])),
            next_s1.l4_word.eq(ihl - 5 + s0.vlan),
        ]
        src, sport = _be(l3, 12, 4), Cat(l4[1], l4[0])
        dst, dport = _be(l3, 16, 4), Cat(l4[3], l4[2])
        m.d.comb += [
            next_s1.htuple.src.eq(Mux(s0.in_port, dst, src)),
            next_s1.htuple.dst.eq(Mux(s0.in_port, src, dst)),
            next_s1.htuple.sport.eq(Mux(s0.in_port, dport, sport)),
            next_s1.htuple.dport.eq(Mux(s0.in_port, sport, dport)),
        ]
        for g in range(15):
            # 32-bit word g of the header is in it when g < IHL: the pair is added unmasked
            # here and dropped in stage 2 (the mask would sit behind the IHL select)
            m.d.comb += [next_s1.csum_parts[g].eq(words[2 * g] + words[2 * g + 1]),
                         next_s1.csum_use[g].eq(g < ihl)]

        # ---- stage 2: the checksum's total and every length comparison ---------------------
        s2 = Signal(data.StructLayout({
            **{name: s1.shape()[name].shape for name in (
                "length", "oversize", "vlan", "ethertype", "version", "ihl", "proto", "src",
                "dst", "sport", "dport", "tcp_flags", "eth_src", "arp_ok", "arp_sha",
                "arp_spa", "arp_tpa", "beats_m1", "fragment", "has_ports", "in_port",
                "l4_word")},
            # (stage 2 holds each NAT checksum half as two sums; stage 3 adds them)
            "ip_part": 18, "l4_part": 18, "ip_part_b": 16, "l4_part_b": 17, "l4_fix": 1,
            "runt": 1, "short_vlan": 1, "short_arp": 1, "short_ip": 1, "short_header": 1,
            "bad_total": 1, "short_l4": 1,
        }))
        s2_valid = Signal()
        s2_sums = Signal(data.ArrayLayout(19, 4))
        n1 = s1.length
        l3_off1 = Mux(s1.vlan, spec.ETH_HEADER + spec.VLAN_TAG, spec.ETH_HEADER)
        checks = {
            "runt": n1 < spec.ETH_HEADER,
            "short_vlan": s1.vlan & (n1 < spec.ETH_HEADER + spec.VLAN_TAG),
            "short_arp": n1 < l3_off1 + spec.ARP_BODY,
            "short_ip": n1 < l3_off1 + spec.IPV4_MIN_HEADER,
            "short_header": n1 < s1.l3_hl,
            "bad_total": (s1.total < s1.hl) | (s1.l3_total > n1),
            "short_l4": s1.has_ports & (s1.total < s1.hl_need),
        }
        # NAT: the parser's halves of the checksum updates (spec.nat_checksum_part), for the
        # destination (client side) or the source (server side) address and port
        old_ip = Mux(s1.in_port, s1.src, s1.dst)
        old_port = Mux(s1.in_port, s1.sport, s1.dport)
        # (the protocol compared in stage 1, and the sums split over stages 2 and 3: a compare,
        # the selects behind it and two adders in a row were a late path into stage 2)
        is_udp1 = s1.is_udp
        l4_csum = Mux(is_udp1, s1.udp_csum, s1.tcp_csum)
        nat_fields = {
            "ip_part": ~s1.ip_csum + ~old_ip[16:32],
            "ip_part_b": ~old_ip[0:16],
            "l4_part": ~l4_csum + ~old_ip[16:32],
            "l4_part_b": ~old_ip[0:16] + ~old_port,
            # TCP: the checksum inside the segment (20 header bytes); UDP: a checksum at all
            "l4_fix": Mux(is_udp1, s1.udp_csum != 0, ~(s1.total < s1.hl_need + 6)),
        }

        # ---- stage 3: the checksum's total -------------------------------------------------
        s3 = Signal.like(s2)
        s3_valid = Signal()
        s3_total = Signal(21)

        # Stages 2 to 5 advance together (and the hasher and the VIP matcher beside them), so a
        # frame's hash and match leave with its record; stages 0 and 1 fill bubbles while the
        # output waits.
        adv = Signal()
        s1_free = Signal()      # stage 1 takes a frame (or a bubble)
        m.submodules.hasher = hasher = Hasher(p)
        m.d.comb += [
            hasher.en.eq(adv), hasher.key.eq(self.key), hasher.table_size.eq(self.table_size),
            hasher.tuple.eq(s1.htuple),
            hasher.ports.eq(s1.has_ports),
        ]
        m.submodules.vipmatch = vipmatch = VipMatcher(p)
        # (the matcher's private copy of the fields loads with stage 1: it compares in the
        # cycle stage 2 takes the frame)
        m.d.comb += [
            vipmatch.en.eq(adv), vipmatch.own_ip.eq(self.own_ip),
            vipmatch.load.eq(s1_free),
            vipmatch.dst.eq(next_s1.dst), vipmatch.proto.eq(next_s1.proto),
            vipmatch.dport.eq(next_s1.dport), vipmatch.ports_known.eq(next_s1.has_ports),
            vipmatch.arp_tpa.eq(next_s1.arp_tpa),
        ]
        for k in range(p.n_vips):
            m.d.comb += [vipmatch.vip_ip[k].eq(self.vip_ip[k]),
                         vipmatch.vip_service[k].eq(self.vip_service[k]),
                         vipmatch.vip_group[k].eq(self.vip_group[k]),
                         vipmatch.vip_pbind[k].eq(self.vip_pbind[k]),
                         vipmatch.vip_rport[k].eq(self.vip_rport[k])]
        # both run beside stages 2 to 4; the output register takes their results (the binding
        # key per VIP or per service port, as the matched entry says)
        assert VipMatcher.LATENCY == Hasher.LATENCY == 3
        m.d.comb += hasher.pbind_prefix.eq(self.pbind_prefix)
        s5_free = s4_free = s3_free = s2_free = adv
        m.d.comb += [
            adv.eq(~self.o.valid | self.o.ready),
            s1_free.eq(~s1_valid | s2_free),
            self.i.ready.eq(s1_free),
        ]
        with m.If(s1_free):
            m.d.sync += [s1_valid.eq(self.i.valid), s1.eq(next_s1)]
        with m.If(s2_free):
            parts = [Mux(s1.csum_use[g], s1.csum_parts[g], 0) for g in range(15)] + [0]
            m.d.sync += s2_valid.eq(s1_valid)
            m.d.sync += [s2_sums[q].eq((parts[4 * q] + parts[4 * q + 1])
                                       + (parts[4 * q + 2] + parts[4 * q + 3]))
                         for q in range(4)]
            m.d.sync += [getattr(s2, name).eq(getattr(s1, name))
                         for name in s2.shape().members
                         if name not in checks and name not in nat_fields]
            m.d.sync += [getattr(s2, name).eq(check) for name, check in checks.items()]
            m.d.sync += [getattr(s2, name).eq(value) for name, value in nat_fields.items()]
        with m.If(s3_free):
            m.d.sync += [s3_valid.eq(s2_valid), s3.eq(s2),
                         s3_total.eq((s2_sums[0] + s2_sums[1]) + (s2_sums[2] + s2_sums[3])),
                         s3.ip_part.eq(s2.ip_part + s2.ip_part_b),
                         s3.l4_part.eq(s2.l4_part + s2.l4_part_b)]

        # ---- stage 4: checksum verdict and the check chain -----------------------------------
        # The end-around-carry sum is 0xFFFF exactly when lo + hi == 0xFFFF (the total of at
        # most 30 words has hi <= 29, so a second fold can never reach 0xFFFF), i.e. when
        # lo == ~hi: a comparison, no adder.
        csum_ok = Signal()
        m.d.comb += csum_ok.eq(s3_total[0:16] == ~Cat(s3_total[16:21], Const(0, 11)))

        fragment, has_ports = s3.fragment, s3.has_ports

        meta = Signal(meta_layout(p))
        err = Signal()
        reason = Signal(spec.REASON_BITS)
        kind_known = Signal()   # Ethernet (and VLAN) header complete, not oversized

        def fail(r: DropReason):
            return [err.eq(1), reason.eq(r)]

        is_arp = s3.ethertype == spec.ETHERTYPE_ARP
        is_ipv4 = s3.ethertype == spec.ETHERTYPE_IPV4
        is_ipv6 = s3.ethertype == spec.ETHERTYPE_IPV6
        with m.If(s3.oversize):
            m.d.comb += fail(DropReason.OVERSIZE)
        with m.Elif(s3.runt):
            m.d.comb += fail(DropReason.RUNT)
        with m.Elif(s3.short_vlan):
            m.d.comb += fail(DropReason.TRUNCATED)
        with m.Else():
            m.d.comb += kind_known.eq(1)
            with m.If(is_arp):
                with m.If(s3.short_arp):
                    m.d.comb += fail(DropReason.TRUNCATED)
            with m.Elif(is_ipv4):
                with m.If(s3.short_ip):
                    m.d.comb += fail(DropReason.TRUNCATED)
                with m.Elif((s3.version != 4) | (s3.ihl < 5)):
                    m.d.comb += fail(DropReason.BAD_IP_HEADER)
                with m.Elif(s3.short_header):
                    m.d.comb += fail(DropReason.TRUNCATED)
                with m.Elif(s3.bad_total):
                    m.d.comb += fail(DropReason.BAD_TOTLEN)
                with m.Elif(~csum_ok):
                    m.d.comb += fail(DropReason.BAD_CSUM)
                with m.Elif(s3.short_l4):
                    m.d.comb += fail(DropReason.TRUNCATED)

        m.d.comb += [
            meta.length.eq(s3.length),
            meta.beats_m1.eq(s3.beats_m1),
            meta.error.eq(err),
            meta.reason.eq(reason),
            meta.is_arp.eq(kind_known & is_arp),
            meta.is_ipv4.eq(kind_known & is_ipv4),
            meta.is_ipv6.eq(kind_known & is_ipv6),
            meta.is_other.eq(kind_known & ~is_arp & ~is_ipv4 & ~is_ipv6),
            meta.vlan.eq(s3.vlan),
            meta.arp_request.eq(s3.arp_ok),
            meta.eth_src.eq(s3.eth_src),
            meta.arp_sha.eq(s3.arp_sha),
            meta.arp_spa.eq(s3.arp_spa),
            meta.arp_tpa.eq(s3.arp_tpa),
            meta.src.eq(s3.src),
            meta.dst.eq(s3.dst),
            meta.proto.eq(s3.proto),
            meta.fragment.eq(fragment),
            meta.ports_known.eq(has_ports),
            meta.sport.eq(Mux(has_ports, s3.sport, 0)),
            meta.dport.eq(Mux(has_ports, s3.dport, 0)),
            meta.tcp_flags.eq(Mux(has_ports & (s3.proto == spec.PROTO_TCP), s3.tcp_flags, 0)),
            meta.in_port.eq(s3.in_port),
            meta.ip_part.eq(s3.ip_part),
            meta.l4_part.eq(s3.l4_part),
            meta.l4_word.eq(s3.l4_word),
            meta.l4_fix.eq(s3.l4_fix),
            meta.udp.eq(s3.proto == spec.PROTO_UDP),
        ]
        s4 = Signal(meta_layout(p))
        s4_valid = Signal()
        with m.If(s4_free):
            m.d.sync += [s4_valid.eq(s3_valid)]
            # (the fields the hasher and the VIP matcher fill are left out)
            m.d.sync += [getattr(s4, name).eq(getattr(meta, name))
                         for name in meta.shape().members if name not in BESIDE]

        # ---- stage 5: the output register takes the record with the VIP matcher's and the
        # hasher's results, as the classifier completes it ----------------------------------
        m.submodules.classifier = classifier = Classifier(p)
        bbits = p.conn_bucket_bits
        record = Signal(meta_layout(p))
        m.d.comb += [
            record.eq(s4),
            record.vip_hit.eq(vipmatch.hit), record.vip.eq(vipmatch.vip),
            record.group.eq(vipmatch.group), record.arp_ours.eq(vipmatch.arp_ours),
            record.hash.eq(hasher.hash), record.idx1.eq(hasher.idx1),
            record.idx2.eq(hasher.idx2),
            record.pbind.eq(vipmatch.pbind),
            record.pkey.eq(Mux(vipmatch.pbind_port, hasher.pkey_port, hasher.pkey_addr)),
            # NAT: client frames of a NAT service and every frame from the server side are
            # keyed by the client key, with the VIP entry in the digest's low bits
            record.nat.eq(vipmatch.nat & ~s4.in_port),
            record.ckey.eq(Mux(vipmatch.nat | s4.in_port,
                               Cat(hasher.ckey[0:bbits], vipmatch.vip,
                                   hasher.ckey[bbits + p.vip_bits:]), hasher.hash)),
            record.new_port.eq(Mux(s4.in_port, s4.sport,
                                   Mux(vipmatch.has_rport, vipmatch.rport, s4.dport))),
            classifier.i.eq(record), classifier.miss_to_host.eq(self.miss_to_host),
        ]
        if not p.stateful:
            # no connection table, no bindings and no NAT: their keys, the NAT mark and the
            # rewriter's NAT values are never read (the logic that makes them is trimmed)
            m.d.comb += [getattr(record, name).eq(0) for name in STATEFUL_ONLY]
        with m.If(s5_free):
            m.d.sync += [self.o.valid.eq(s4_valid), self.o.payload.eq(classifier.o)]
        return m
