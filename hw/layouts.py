"""Stream beat and metadata layouts shared by every block (``lib.data`` layouts).

Byte ``j`` of a beat is ``data[8*j : 8*j+8]`` (lane 0 first on the wire); ``keep`` has one bit per
lane, contiguous from lane 0, and only the last beat of a frame may be partial.
"""

from __future__ import annotations

from amaranth.lib import data

from openslb.hw.spec import (DEFAULT_PARAMS, ETH_HEADER, HEADER_WINDOW, REASON_BITS, VLAN_TAG,
                             Params, registers)

__all__ = ["beat_layout", "stored_beat_layout", "egress_beat_layout", "capture_layout",
           "IHL_WORDS", "L3_AT", "l4_sel_bit", "tuple_layout", "meta_layout", "register_layout",
           "register_view", "Action"]


def register_layout(name: str, p: Params = DEFAULT_PARAMS) -> data.FlexibleLayout:
    """The fields of register ``name`` as the register map for ``p`` describes them (``spec``),
    so that the gateware reads ``View(register_layout("VIP_SERVICE"), word).any_port`` rather
    than bit positions copied by hand.  (Some fields' widths depend on ``p``: VIP_GROUP's.)"""
    reg = next(r for r in registers(p) if r.name == name)
    return data.FlexibleLayout(32, {field: data.Field(width, lsb)
                                    for field, lsb, width in reg.fields})


def register_view(name: str, word, p: Params = DEFAULT_PARAMS) -> data.View:
    """``word`` (a register's value) seen through its fields: ``register_view("CONN_CTRL",
    regs.conn_ctrl).enable``."""
    return data.View(register_layout(name, p), word)


class Action:
    """What the pipeline does with a frame (the ``action`` field of the metadata)."""
    DROP = 0
    HOST = 1
    ARP = 2   # answer an ARP request for a VIP / the appliance (on the port it came from)
    VIP = 3   # forward to a real (DSR, or NAT when the record's ``nat`` is set)
    RNAT = 4  # from the server side: return traffic of a NAT connection, if the table has it


def beat_layout(p: Params) -> data.StructLayout:
    """Ingress beat: ``{data, keep, first, last}``."""
    return data.StructLayout({"data": p.width, "keep": p.lanes, "first": 1, "last": 1})


def stored_beat_layout(p: Params) -> data.StructLayout:
    """A beat in the packet buffer.  Frame boundaries are not stored: the capture stage records
    each frame's beat count in its header record, and the rewriter counts beats."""
    return data.StructLayout({"data": p.width, "keep": p.lanes})


def egress_beat_layout(p: Params) -> data.StructLayout:
    """Egress beat: ``{data, keep, first, last, port}`` (port: :class:`~openslb.hw.spec.EgressPort`)."""
    return data.StructLayout({"data": p.width, "keep": p.lanes, "first": 1, "last": 1,
                              "port": 2})


#: The IPv4 header lengths (in 32-bit words) behind which the parser reads the L4 header.
IHL_WORDS = range(5, 16)
#: Where the L3 header starts: without a VLAN tag, and behind one.
L3_AT = (ETH_HEADER, ETH_HEADER + VLAN_TAG)


def l4_sel_bit(vlan: int, words: int) -> int:
    """Bit of ``capture_layout().l4_sel`` for a frame with (``vlan`` 1) or without a VLAN tag
    and an IPv4 header of ``words`` 32-bit words (its L4 header is at L3_AT[vlan] + 4 * words).
    """
    return vlan * len(IHL_WORDS) + words - IHL_WORDS.start


def capture_layout() -> data.StructLayout:
    """What the capture stage hands the parser at the end of a frame."""
    return data.StructLayout({
        "window": data.ArrayLayout(8, HEADER_WINDOW),
        "length": 16,     # bytes, saturating at 0xFFFF
        "oversize": 1,    # longer than max_frame (the stored copy was cut)
        "beats_m1": 16,   # beats stored in the packet buffer, minus one
        "vlan": 1,        # ethertype 0x8100 (so the parser's first stage needs no compare)
        # one-hot: where the L4 header is (bit l4_sel_bit(vlan, IHL)), none for IHL < 5
        "l4_sel": 2 * len(IHL_WORDS),
        "in_port": 1,     # IngressPort the frame came from
    })


def tuple_layout() -> data.StructLayout:
    """The flow tuple the hasher reads."""
    return data.StructLayout({"src": 32, "dst": 32, "sport": 16, "dport": 16})


def meta_layout(p: Params) -> data.StructLayout:
    """Per-frame metadata; each stage fills its own fields and passes the rest along."""
    return data.StructLayout({
        # parser
        "length": 16,
        "beats_m1": 16,   # beats the frame occupies in the packet buffer, minus one
        "error": 1,
        "reason": REASON_BITS,
        "in_port": 1,     # IngressPort
        "is_arp": 1, "is_ipv4": 1, "is_ipv6": 1, "is_other": 1,
        "vlan": 1,
        "arp_request": 1,
        "eth_src": 48,
        "arp_sha": 48, "arp_spa": 32, "arp_tpa": 32,
        "src": 32, "dst": 32, "proto": 8,
        "fragment": 1, "ports_known": 1,
        "sport": 16, "dport": 16, "tcp_flags": 8,
        # VIP matcher (beside the parser) and classifier
        "vip_hit": 1, "arp_ours": 1,
        "action": 3,
        "vip": p.vip_bits,
        "group": p.group_bits,
        # VIP matcher + hasher: client persistence of the service and the binding key
        "pbind": 1, "pkey": 32,
        # NAT: the service's mode, the connection key (the flow hash, or for NAT the client key
        # with the VIP entry in its digest), the port the rewriter writes, and the parser's
        # halves of the checksum updates (spec.nat_checksum_part) with where the L4 header is
        "nat": 1, "ckey": 32, "new_port": 16, "ip_part": 18, "l4_part": 18,
        "l4_word": 4,     # (L4 offset - 34) / 4: IHL - 5, plus 1 behind a VLAN tag
        "l4_fix": 1,      # the L4 checksum is rewritten (TCP within the segment; UDP not 0)
        "udp": 1,
        # hasher (beside the parser)
        "hash": 32,
        # marked on the way into the lookup queue (selector.mark_new_flow): the frame needs a
        # lookup (action VIP or RNAT), it is a tracked frame that starts a flow (TCP SYN, UDP),
        # and whether its group's metric is round robin or leastconns, so that the selector's
        # accept reads no configuration and decodes no action
        "lookup": 1, "starts": 1, "rr": 1, "lc": 1,
        "idx1": p.index_bits, "idx2": p.index_bits,
        # selector (and its connection table: what a tracked frame found and did)
        "real": p.real_bits,
        "real_mac": 48,
        "tracked": 1, "conn_hit": 1, "conn_new": 1, "conn_evict": 1, "conn_full": 1,
        "pbind_hit": 1, "pbind_new": 1, "pbind_full": 1,
    })


#: The record fields the rewriter reads: all the decision queue keeps of a frame's record.
DECISION_FIELDS = ("action", "beats_m1", "vlan", "real_mac", "eth_src", "arp_sha", "arp_spa",
                   "arp_tpa", "in_port", "nat", "real", "vip", "ports_known", "new_port",
                   "ip_part", "l4_part", "l4_word", "l4_fix", "udp")


def decision_layout(p: Params) -> data.StructLayout:
    """A frame's decision as the rewriter needs it (a subset of :func:`meta_layout`): the
    decision queue holds about 320 bits a frame instead of the whole record's 650."""
    meta = meta_layout(p)
    return data.StructLayout({name: meta[name].shape for name in DECISION_FIELDS})

