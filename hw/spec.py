"""The one description of the openslb dispatch core.

Everything that the gateware, the reference model, the firmware and the docs must agree on is
written here exactly once: design parameters, the register map, the global counters, the drop
reasons, the table layouts, the Toeplitz default key and the Maglev index scaling.  The gateware
decoder (:mod:`openslb.hw.regbank`), the firmware accessors (:mod:`openslb.firmware.regs`), the
reference model (:mod:`openslb.model`) and ``docs/registers.md`` are all generated from, or import,
this module.  It is pure Python (no Amaranth import) so that every layer can use it.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass, field

__all__ = [
    "Params", "Access", "Register", "REGISTERS", "REG", "COUNTERS", "DropReason",
    "EgressPort", "Mode", "RSS_DEFAULT_KEY", "maglev_indices", "render_register_doc",
    "BridgeCmd", "BridgeStatus", "BRIDGE_MAX_BURST", "UART_DEFAULT_BAUD",
    "ConnState", "ConnTimeout", "conn_entry_fields", "conn_split", "CONN_STAMP_BITS",
    "IngressPort", "nat_digest", "nat_checksum", "nat_checksum_part", "ones_fold",
    "Metric", "MAXCON_BITS", "WEIGHT_BITS", "rr_advance", "member_words",
    "params_word", "params_from_word", "pack_register", "unpack_register",
    "STAT_LATCH_CYCLES", "SNAPSHOT_CYCLES", "is_prime", "default_table_size",
]


# --------------------------------------------------------------------------------------------
# Design parameters
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Params:
    """Elaboration parameters of the dispatch core.

    Attributes
    ----------
    width:
        Stream data width in bits (8, 16, 32, 64, 128).  64 is the default core; 8 is what a
        1 Gb/s RGMII MAC delivers.
    n_vips:
        Entries of the VIP (virtual service) table.
    n_groups:
        Real-server groups, each with its own Maglev lookup table.
    n_reals:
        Real servers (the health mask and the real MAC table have this many entries).
    table_stride:
        Words reserved per group in the Maglev memory; the table size ``M`` (a register, a prime,
        default 4093) must not exceed it.
    conn_buckets:
        Buckets of the connection table (each holds ``conn_ways`` flows); the bucket is the low
        ``log2(conn_buckets)`` bits of the flow hash.
    conn_ways:
        Flows per bucket (the ways are read and compared in parallel).
    pbind_buckets:
        Buckets of the persistence table (client-IP bindings, ``conn_ways`` each).
    max_frame:
        Longest frame (bytes, without FCS) that is forwarded; longer frames are dropped as
        ``OVERSIZE``.  The packet buffer holds two such frames.
    stateful:
        ``False`` builds the stateless profile: no connection table, client bindings, connection
        counts or round-robin pointers in the gateware.  Such a core behaves as a full one whose
        CONN_CTRL.enable is 0 (whatever the register holds), so the metrics, maxcon, pbind and
        NAT's return traffic, which all need the connection table, are not available; PARAMS
        says so (``stateless``) and the firmware refuses ``/cfg/slb/adv/conn ena``.  For small
        FPGAs (the Colorlight's LFE5U-25F).
    """

    width: int = 64
    n_vips: int = 16
    n_groups: int = 16
    n_reals: int = 256
    table_stride: int = 4096
    conn_buckets: int = 1024
    conn_ways: int = 4
    pbind_buckets: int = 256
    max_frame: int = 2048
    stateful: bool = True

    def __post_init__(self) -> None:
        if self.width not in (8, 16, 32, 64, 128):
            raise ValueError(f"width must be 8, 16, 32, 64 or 128 bits, not {self.width}")
        for name in ("n_vips", "n_groups", "n_reals", "table_stride", "conn_buckets",
                     "conn_ways", "pbind_buckets"):
            value = getattr(self, name)
            if value < 1 or value & (value - 1):
                raise ValueError(f"{name} must be a power of two, not {value}")
        if self.n_reals > 256:
            raise ValueError("a table entry is 8 bits: at most 256 reals")
        if self.conn_ways > 8:
            raise ValueError("conn_ways must be 1, 2, 4 or 8")
        for name in ("conn_buckets", "pbind_buckets"):
            if not 16 <= getattr(self, name) <= 16384:
                raise ValueError(f"{name} must be 16..16384 (one block RAM deep at most)")
        if self.max_frame % 16 or self.max_frame < 128:
            raise ValueError("max_frame must be a multiple of 16 and at least 128")

    @property
    def lanes(self) -> int:
        """Bytes per stream beat."""
        return self.width // 8

    @property
    def group_bits(self) -> int:
        return max(1, (self.n_groups - 1).bit_length())

    @property
    def index_bits(self) -> int:
        return (self.table_stride - 1).bit_length()

    @property
    def real_bits(self) -> int:
        return max(1, (self.n_reals - 1).bit_length())

    @property
    def vip_bits(self) -> int:
        return max(1, (self.n_vips - 1).bit_length())

    @property
    def conn_bucket_bits(self) -> int:
        return (self.conn_buckets - 1).bit_length()

    @property
    def conn_flows(self) -> int:
        """Flows the connection table holds."""
        return self.conn_buckets * self.conn_ways

    @property
    def conn_count_bits(self) -> int:
        """Bits of a real's connection count (it can hold every flow of the table)."""
        return self.conn_flows.bit_length()

    @property
    def buffer_beats(self) -> int:
        """Depth of the packet buffer in beats (two maximum frames)."""
        return 2 * self.max_frame // self.lanes


DEFAULT_PARAMS = Params()

#: Bytes of each frame the parser looks at (enough for VLAN + IPv4 with options + TCP flags).
HEADER_WINDOW = 96
#: Default Maglev table size: a prime below the 4096-word stride.
DEFAULT_TABLE_SIZE = 4093


def is_prime(n: int) -> bool:
    """Whether ``n`` is prime (a Maglev table size must be)."""
    if n < 2:
        return False
    return all(n % d for d in range(2, int(n ** 0.5) + 1))


def default_table_size(p: Params) -> int:
    """The Maglev table size a core with ``p`` starts with: :data:`DEFAULT_TABLE_SIZE`, or the
    largest prime that fits a smaller table stride (251 for the iCEBreaker's 256)."""
    n = min(DEFAULT_TABLE_SIZE, p.table_stride)
    while not is_prime(n):
        n -= 1
    return n

# Packet format constants (Ethernet / IEEE 802.1Q / ARP / IPv4).
ETH_HEADER = 14
VLAN_TAG = 4
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_ARP = 0x0806
ETHERTYPE_VLAN = 0x8100
ETHERTYPE_IPV6 = 0x86DD
ARP_BODY = 28
IPV4_MIN_HEADER = 20
PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
#: Bytes of L4 header an unfragmented TCP/UDP datagram must carry (TCP flags sit at byte 13).
L4_MIN_HEADER = {PROTO_TCP: 14, PROTO_UDP: 8}
#: The frame length counter saturates here (RX_BYTES adds at most this per frame).
LENGTH_SATURATE = 0xFFFF

#: The RSS key of the Microsoft verification suite; the hardware resets to it.
RSS_DEFAULT_KEY = bytes.fromhex(
    "6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa")


class EgressPort(enum.IntEnum):
    """Where a frame leaves the core (the ``port`` field of the egress stream)."""
    CLIENT = 0  #: back towards the clients (ARP replies)
    SERVER = 1  #: towards the real servers (DSR forwarding)
    HOST = 2    #: to the management host (traffic the data plane does not handle)


class Mode(enum.IntEnum):
    """Forwarding mode of a virtual service (VIP_SERVICE.mode)."""
    DSR = 0  #: direct server return: the destination MAC becomes the real's, the IP packet stays
    NAT = 1  #: full NAT of the destination (the real's IP, the service's rport), reverse NAT back


class Metric(enum.IntEnum):
    """How a group chooses the real of a new flow (GROUP_METRIC.metric).

    A *new flow* is a tracked frame that starts one (TCP SYN without ACK, any UDP datagram)
    and has no live entry whose real is up; every other frame is decided as under ``HASH``.
    """
    HASH = 0        #: the Maglev slot of the flow hash (then the rehash slot, then the backup)
    ROUNDROBIN = 1  #: the group's next slot in table order (each real in proportion to weight)
    LEASTCONNS = 2  #: of the flow's two Maglev slots, the real with fewer connections per weight


#: Bits of a real's connection limit (REAL_LIMIT.maxcon; 0 = none) and of its weight.
MAXCON_BITS = 20
WEIGHT_BITS = 8


def member_words(p: Params) -> int:
    """32-bit words of a group's real-membership mask (MEMBER_SEL.word)."""
    return -(-p.n_reals // 32)


def rr_advance(pointer: int, first_taken: bool, table_size: int) -> int:
    """A round-robin group's next slot after a new flow: one on when it took the pointer's
    slot, two when it tried both (took the second, the backup, or was dropped)."""
    return (pointer + (1 if first_taken else 2)) % table_size


class IngressPort(enum.IntEnum):
    """Where a frame enters the core (the core's ``i_port`` input, held for a whole frame)."""
    CLIENT = 0  #: from the clients (VIP traffic)
    SERVER = 1  #: from the real servers (NAT return traffic, the reals' ARP requests)


class DropReason(enum.IntEnum):
    """Why a frame was dropped.

    Every dropped frame is counted under exactly one reason (``DROP_<NAME>`` counters): the
    first that applies in the parser's check order (docs/pipeline.md, "Drop rules").
    """
    OVERSIZE = 0
    RUNT = 1
    TRUNCATED = 2
    BAD_IP_HEADER = 3
    BAD_TOTLEN = 4
    BAD_CSUM = 5
    NON_VIP = 6
    NO_REAL = 7
    NO_CONN = 8
    NAT_FRAGMENT = 9
    MAXCON = 10


DROP_DOC = {
    DropReason.OVERSIZE: "longer than `max_frame` bytes (the stored part is discarded)",
    DropReason.RUNT: "shorter than an Ethernet header (14 bytes)",
    DropReason.TRUNCATED: "VLAN tag, ARP body, IPv4 header or the ports of an unfragmented "
                          "TCP (14 bytes) / UDP (8 bytes) header cut short",
    DropReason.BAD_IP_HEADER: "IPv4 version is not 4, or IHL < 5",
    DropReason.BAD_TOTLEN: "IPv4 total length < header length, or longer than the frame",
    DropReason.BAD_CSUM: "IPv4 header checksum wrong",
    DropReason.NON_VIP: "not for a VIP or the appliance, and the miss rule is drop",
    DropReason.NO_REAL: "chosen real, rehash real and group backup all down (for a new flow: "
                        "none of them up)",
    DropReason.NO_CONN: "a TCP/UDP frame from the server side that belongs to no NAT connection "
                        "(no live entry for its client address and port)",
    DropReason.NAT_FRAGMENT: "an IPv4 fragment for a NAT service (its L4 checksum cannot be "
                             "rewritten frame by frame)",
    DropReason.MAXCON: "a new flow found every real of its group that is up at its connection "
                       "limit (maxcon), and the group backup full or down",
}
#: Bits of the ``reason`` field of a frame's record.
REASON_BITS = (len(DropReason) - 1).bit_length()


#: Per-frame global counters, 64 bits each, in register order.
COUNTERS: tuple[str, ...] = (
    "RX_FRAMES", "RX_BYTES", "RX_ARP", "RX_IPV4", "RX_IPV6", "RX_OTHER", "RX_FRAGMENTS",
    "TX_SERVER", "TX_CLIENT", "TX_HOST", "RX_SERVER", "TX_RNAT",
) + tuple(f"DROP_{r.name}" for r in DropReason) + (
    # connection table, per tracked frame (a VIP frame of a TCP/UDP flow with its ports, when
    # the table is enabled): exactly one of HIT / MISS; a miss may then learn (NEW), evicting a
    # half-open entry (EVICT), or find its bucket full of live entries (FULL)
    "CONN_HIT", "CONN_MISS", "CONN_NEW", "CONN_EVICT", "CONN_FULL",
    # persistence (pbind), per tracked frame of a service with pbind on
    "PBIND_HIT", "PBIND_NEW", "PBIND_FULL",
)

COUNTER_DOC = {
    "RX_SERVER": "frames received from the server side (also counted in RX_FRAMES)",
    "TX_RNAT": "return frames of NAT connections sent to the clients, source rewritten to the "
               "VIP (also counted in TX_CLIENT)",
    "CONN_HIT": "tracked frames that found their flow's entry (they keep its real while it is up)",
    "CONN_MISS": "tracked frames with no live entry (they follow the Maglev table)",
    "CONN_NEW": "entries learned (first packet of a flow: TCP SYN without ACK, any UDP datagram)",
    "CONN_EVICT": "learned entries that replaced a half-open (SYN) entry of another flow",
    "CONN_FULL": "flows not learned: every way of their bucket held a live established entry",
    "PBIND_HIT": "tracked frames of a pbind service whose client had a live binding",
    "PBIND_NEW": "client bindings made (a forwarded frame of a client with none)",
    "PBIND_FULL": "bindings not made: every way of the bucket held a live binding",
}


# --------------------------------------------------------------------------------------------
# Connection table
# --------------------------------------------------------------------------------------------

#: Bits of the time stamp kept in an entry (time is counted in ticks of CONN_TICK_CYCLES).
CONN_STAMP_BITS = 12
#: Longest timeout in ticks.  An entry past its timeout is cleared by the scrubber (or by the
#: next write to its bucket) well before its 12-bit age wraps around (4096 ticks).
CONN_TIMEOUT_MAX = 2047

#: TCP flag bits (the parser's ``tcp_flags``, byte 13 of the TCP header).
TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10


class ConnState(enum.IntEnum):
    """State of a connection-table entry."""
    FREE = 0     #: empty way
    SYN = 1      #: TCP, only the client's SYN seen (half-open: may be evicted by a new flow)
    OPEN = 2     #: TCP established (an ACK without SYN seen), or a UDP flow
    CLOSING = 3  #: TCP FIN or RST seen (short timeout)


class ConnTimeout(enum.IntEnum):
    """Index into the CONN_TIMEOUT registers: which timeout applies to an entry."""
    SYN = 0
    OPEN = 1
    CLOSING = 2
    UDP = 3


#: Default timeouts in ticks (with the default tick of one second, close to IPVS' defaults:
#: half-open 30 s, established 10 min, closing 10 s, UDP 2 min).
CONN_TIMEOUT_DEFAULTS = {ConnTimeout.SYN: 30, ConnTimeout.OPEN: 600, ConnTimeout.CLOSING: 10,
                         ConnTimeout.UDP: 120}


def conn_timeout_index(state: int, udp: bool) -> ConnTimeout:
    """The timeout that applies to a live entry."""
    return ConnTimeout.UDP if udp else ConnTimeout(state - 1)


def conn_entry_fields(p: Params) -> tuple[tuple[str, int], ...]:
    """One way of a bucket, LSB first: ``(name, bits)``.  The digest is the part of the 32-bit
    key above the bucket bits, less its top bit (:func:`conn_split`).

    A DSR flow's key is its flow hash, so an entry matches exactly the flows with its full hash
    (flows with one hash also share one Maglev slot).  A NAT flow (``nat`` set) is keyed by its
    client address and port alone (:func:`nat_key`), the one part of the flow its return
    traffic also carries, and the low ``vip_bits`` of its digest hold the VIP entry instead of
    hash bits (:func:`nat_digest`): a return frame matches on the rest and reads the VIP there.
    """
    return (("state", 2), ("udp", 1), ("nat", 1), ("stamp", CONN_STAMP_BITS),
            ("real", p.real_bits), ("digest", conn_digest_bits(p)))


def conn_digest_bits(p: Params) -> int:
    return 31 - p.conn_bucket_bits


def conn_entry_bits(p: Params) -> int:
    return sum(width for _, width in conn_entry_fields(p))


def pbind_prefix_mask(prefix_bytes: int) -> int:
    """The client-address mask of a binding: its first ``prefix_bytes`` bytes (0..4; more
    counts as 4, as in the hardware)."""
    prefix_bytes = min(prefix_bytes, 4)
    return (0xFFFFFFFF << (32 - 8 * prefix_bytes)) & 0xFFFFFFFF if prefix_bytes else 0


def conn_split(hash32: int, p: Params) -> tuple[int, int]:
    """``(bucket, digest)`` of a 32-bit key: the low bits and the bits above them but the top
    one."""
    return (hash32 & (p.conn_buckets - 1),
            (hash32 >> p.conn_bucket_bits) & ((1 << conn_digest_bits(p)) - 1))


def nat_digest(digest: int, vip: int, p: Params) -> int:
    """A NAT entry's digest: the key's digest with its low ``vip_bits`` replaced by the VIP
    entry."""
    return (digest & ~((1 << p.vip_bits) - 1)) | vip


def ones_fold(total: int) -> int:
    """A non-negative sum folded to 16 bits with end-around carries (twice, as the rewriter
    does: enough for the sums it folds, which stay below 2**19)."""
    for _ in range(2):
        total = (total & 0xFFFF) + (total >> 16)
    assert total <= 0xFFFF
    return total


def nat_checksum_part(csum: int, old_words: list[int]) -> int:
    """The parser's half of an incremental checksum update (RFC 1624, eqn. 3):
    ``~HC + sum(~m)``, an unfolded integer."""
    return (~csum & 0xFFFF) + sum(~w & 0xFFFF for w in old_words)


def nat_checksum(part: int, new_words: list[int], udp: bool = False) -> int:
    """The rewriter's half: ``HC' = ~(part + sum(m'))`` folded; a UDP result of 0 is sent as
    0xFFFF (RFC 768: zero means no checksum)."""
    value = ~ones_fold(part + sum(new_words)) & 0xFFFF
    return 0xFFFF if udp and value == 0 else value


def conn_next_state(state: ConnState, flags: int) -> ConnState:
    """An entry's TCP state after a packet with TCP ``flags`` (``FREE`` for a new entry)."""
    if flags & (TCP_FIN | TCP_RST):
        return ConnState.CLOSING
    if flags & TCP_SYN and not flags & TCP_ACK:
        return ConnState.SYN if state in (ConnState.FREE, ConnState.CLOSING) else state
    if state == ConnState.SYN and flags & TCP_ACK:
        return ConnState.OPEN
    return state




# --------------------------------------------------------------------------------------------
# Register map
# --------------------------------------------------------------------------------------------

#: Ethernet ports of a board top (0: client side, 1: server side) and their receive counters.
MAC_PORTS = 2
MAC_COUNTER_NAMES = ("rx_ok", "rx_bad_fcs", "rx_runt", "rx_oversize", "rx_error", "rx_overflow")


class Access(enum.Enum):
    RW = "rw"          #: storage register, read back as written
    RO = "ro"          #: driven by the design
    STROBE = "strobe"  #: a write pulses an action (the written value travels with it)


@dataclass(frozen=True)
class Register:
    """One 32-bit register, or an array of ``count`` consecutive registers."""
    name: str
    offset: int
    access: Access
    doc: str
    count: int = 1
    reset: int = 0
    fields: tuple[tuple[str, int, int], ...] = field(default=())  # (name, lsb, width)
    #: RW only: writes are staged and reach the design at the next COMMIT, together with the
    #: shadow Maglev bank, so an apply is seen by traffic all at once or not at all.
    committed: bool = False
    #: RO arrays only: the design presents one word at a time, the one named by the register
    #: bank's ``<name>_index`` port (which follows the bus address), so the words can live in
    #: a RAM instead of a multiplexer over all of them.
    indexed: bool = False

    @property
    def mask(self) -> int:
        """The bits a write stores and a read returns: its fields', or all 32 without fields
        (the other bits of a register with fields read 0 and ignore writes)."""
        if not self.fields:
            return 0xFFFFFFFF
        word = 0
        for _, lsb, width in self.fields:
            word |= ((1 << width) - 1) << lsb
        return word

    def address(self, index: int = 0) -> int:
        if not 0 <= index < self.count:
            raise IndexError(f"{self.name}[{index}]: index out of range 0..{self.count - 1}")
        return self.offset + index


#: Cycles after a STAT_SEL write by which STAT holds the entry: the strobe, the RAM read (a
#: counter update may delay it by one cycle), the RAM's two cycles and the latch, with a spare.
STAT_LATCH_CYCLES = 6

#: Cycles after a SNAPSHOT write by which every COUNTER word holds the snapshot: the counters
#: are copied one per cycle (:class:`~openslb.hw.counters.Counters`), after two pipeline steps,
#: with a spare.
SNAPSHOT_CYCLES = len(COUNTERS) + 3


def _registers(p: Params) -> tuple[Register, ...]:
    mac = int.from_bytes(b"\x02\x00\x5e\x00\x00\x01", "big")
    key_words = [int.from_bytes(RSS_DEFAULT_KEY[4 * i:4 * i + 4], "big") for i in range(10)]
    C = True   # committed: staged until COMMIT
    regs = [
        Register("ID", 0x000, Access.RO, "Magic number 0x534C4231 ('SLB1')."),
        Register("PARAMS", 0x001, Access.RO, "Elaboration parameters.",
                 fields=(("width", 0, 8), ("vip_bits", 8, 4), ("group_bits", 12, 4),
                         ("real_bits", 16, 4), ("index_bits", 20, 5),
                         ("conn_bucket_bits", 25, 4), ("conn_ways_log2", 29, 2),
                         ("stateless", 31, 1))),
        Register("CTRL", 0x002, Access.RW, "Global control.", committed=C,
                 fields=(("miss_to_host", 0, 1),)),
        Register("COMMIT", 0x003, Access.STROBE,
                 "Write 1: at the next moment no frame is between the parser and the decision "
                 "queue, the shadow Maglev bank becomes active and every committed register "
                 "takes its staged value (ACTIVE_BANK flips when done)."),
        Register("ACTIVE_BANK", 0x004, Access.RO, "Maglev bank the selector reads (0/1)."),
        Register("SNAPSHOT", 0x005, Access.STROBE,
                 "Write 1: take a snapshot of every global counter at the same moment; the "
                 f"COUNTER words hold it at most {SNAPSHOT_CYCLES} cycles later."),
        Register("OWN_MAC_HI", 0x008, Access.RW, "Appliance MAC, bytes 0-1.",
                 reset=mac >> 32, committed=C, fields=(("mac_hi", 0, 16),)),
        Register("OWN_MAC_LO", 0x009, Access.RW, "Appliance MAC, bytes 2-5.",
                 reset=mac & 0xFFFFFFFF, committed=C),
        Register("OWN_IP", 0x00A, Access.RW, "Appliance IPv4 address (answered to ARP).",
                 committed=C),
        Register("CLIENT_GW_MAC_HI", 0x00C, Access.RW,
                 "Next hop towards the clients, bytes 0-1: the destination MAC of "
                 "reverse-NAT frames.", committed=C, fields=(("mac_hi", 0, 16),)),
        Register("CLIENT_GW_MAC_LO", 0x00D, Access.RW, "Next hop towards the clients, bytes 2-5.",
                 committed=C),
        Register("TABLE_SIZE", 0x00B, Access.RW,
                 f"Maglev table size M (prime, <= {p.table_stride}).", reset=default_table_size(p),
                 committed=C),
        Register("RSS_KEY", 0x010, Access.RW,
                 "Toeplitz key, 40 bytes, word 0 holds key bytes 0-3 (big-endian).",
                 count=10, reset=0, committed=C),  # resets per word below
        Register("HEALTH", 0x020, Access.RW,
                 "Health mask: bit r%32 of word r//32 is 1 when real r is up (immediate).",
                 count=p.n_reals // 32 if p.n_reals >= 32 else 1),
        Register("TABLE_ADDR", 0x030, Access.STROBE,
                 "Write: set the shadow Maglev write pointer to group << index_bits | index.",
                 fields=(("index", 0, p.index_bits), ("group", p.index_bits, p.group_bits))),
        Register("TABLE_DATA", 0x031, Access.STROBE,
                 "Write: real index into shadow[TABLE_ADDR], then TABLE_ADDR += 1."),
        Register("REAL_SEL", 0x032, Access.RW,
                 "Real that REAL_MAC_LO, REAL_IP and REAL_LIMIT write and REAL_CONNS shows."),
        Register("REAL_MAC_HI", 0x033, Access.RW, "Real MAC bytes 0-1 (staged)."),
        Register("REAL_MAC_LO", 0x034, Access.STROBE,
                 "Write real MAC bytes 2-5; stores {REAL_MAC_HI, value} for real REAL_SEL."),
        Register("TABLE_ENTRY", 0x035, Access.STROBE,
                 "Write: one shadow slot, anywhere (for delta uploads: one word per slot).",
                 fields=(("real", 0, p.real_bits), ("index", 8, p.index_bits),
                         ("group", 8 + p.index_bits, p.group_bits))),
        Register("TABLE_RADDR", 0x036, Access.STROBE,
                 "Write: read one slot back into TABLE_RDATA (bank 0 = shadow, 1 = active).",
                 fields=(("index", 0, p.index_bits), ("group", p.index_bits, p.group_bits),
                         ("bank", 24, 1))),
        Register("TABLE_RDATA", 0x037, Access.RO,
                 "Slot asked for by TABLE_RADDR; `valid` is 0 until it has been read (the read "
                 "waits for a cycle with no lookup).",
                 fields=(("real", 0, 8), ("valid", 31, 1))),
        Register("REAL_IP", 0x038, Access.STROBE,
                 "Write: the IPv4 address of real REAL_SEL (NAT services send it there)."),
        Register("REAL_LIMIT", 0x039, Access.STROBE,
                 "Write: the connection limit (0: none) and weight of real REAL_SEL (new flows "
                 "skip a real at its limit; leastconns compares connections / weight).",
                 fields=(("maxcon", 0, MAXCON_BITS), ("weight", MAXCON_BITS, WEIGHT_BITS))),
        Register("REAL_CONNS", 0x03A, Access.RO,
                 "Connections of real REAL_SEL (entries of the connection table that name it; "
                 "an entry past its timeout counts until the scrubber clears it), and whether "
                 "it is at its limit.",
                 fields=(("conns", 0, MAXCON_BITS), ("full", 31, 1))),
        Register("MEMBER_SEL", 0x03B, Access.RW,
                 "Group and word of the real-membership mask that MEMBER_DATA writes.",
                 fields=(("word", 0, 3), ("group", 8, p.group_bits))),
        Register("MEMBER_DATA", 0x03C, Access.STROBE,
                 "Write: bits of reals 32*word..32*word+31 in group MEMBER_SEL.group's mask, in "
                 "the shadow bank (it swaps with the Maglev tables at COMMIT): the reals in the "
                 "group's table, where a new flow whose candidates are full may spill over."),
        Register("VIP_IP", 0x040, Access.RW, "VIP table: destination IPv4 address.",
                 count=p.n_vips, committed=C),
        Register("VIP_SERVICE", 0x060, Access.RW, "VIP table: service.", count=p.n_vips,
                 committed=C,
                 fields=(("port", 0, 16), ("proto", 16, 8), ("enable", 24, 1),
                         ("any_port", 25, 1), ("mode", 26, 2))),
        Register("VIP_GROUP", 0x080, Access.RW, "VIP table: real-server group.", count=p.n_vips,
                 committed=C, fields=(("group", 0, p.group_bits),)),
        Register("VIP_PBIND", 0x0C0, Access.RW,
                 "VIP table: client-IP persistence. A binding is keyed by the client prefix "
                 "(PBIND_PREFIX) and the VIP, with the destination port when `per_port`.",
                 count=p.n_vips, committed=C, fields=(("enable", 0, 1), ("per_port", 1, 1))),
        Register("VIP_RPORT", 0x0E0, Access.RW,
                 "VIP table: the real's port of a NAT service (0: the frame's own port).",
                 count=p.n_vips, committed=C, fields=(("rport", 0, 16),)),
        Register("GROUP_BACKUP", 0x0A0, Access.RW, "Per group: backup real.", count=p.n_groups,
                 committed=C, fields=(("real", 0, 8), ("enable", 8, 1))),
        Register("GROUP_METRIC", 0x180, Access.RW,
                 "Per group: how new flows choose a real (Metric: 0 hash, 1 roundrobin, "
                 "2 leastconns; the last two need the connection table).", count=p.n_groups,
                 committed=C, fields=(("metric", 0, 2),)),
        Register("COUNTER", 0x100, Access.RO,
                 "Global counter snapshots: word 2n = low, 2n+1 = high half of counter n.",
                 count=2 * len(COUNTERS), indexed=True),
        Register("STAT_SEL", 0x140, Access.STROBE,
                 "Write: latch packets/bytes of one VIP (bit 15 = 0) or real (bit 15 = 1); "
                 f"STAT holds them at most {STAT_LATCH_CYCLES} cycles later.",
                 fields=(("index", 0, 8), ("real", 15, 1))),
        Register("STAT", 0x141, Access.RO,
                 "Latched entry: packets lo, packets hi, bytes lo, bytes hi.", count=4),
        Register("CONN_CTRL", 0x160, Access.RW,
                 "Connection table control: `enable` tracks TCP/UDP flows of every VIP.",
                 committed=C, fields=(("enable", 0, 1),)),
        Register("CONN_TIMEOUT", 0x161, Access.RW,
                 f"Timeouts in ticks (at most {CONN_TIMEOUT_MAX}), indexed by ConnTimeout: "
                 "half-open TCP, established TCP, closing TCP (after FIN/RST), UDP.",
                 count=4, committed=C, fields=(("ticks", 0, CONN_TIMEOUT_MAX.bit_length()),)),
        Register("PBIND_TIMEOUT", 0x16A, Access.RW,
                 f"Client binding (pbind) timeout in ticks (at most {CONN_TIMEOUT_MAX}).",
                 committed=C, fields=(("ticks", 0, CONN_TIMEOUT_MAX.bit_length()),)),
        Register("PBIND_PREFIX", 0x16B, Access.RW,
                 "Bytes of the client address that key a binding: 4 = /32 (one client), 3 = /24, "
                 "2 = /16, 1 = /8, 0 = every client of the service together.", reset=4,
                 committed=C, fields=(("bytes", 0, 3),)),
        Register("CONN_TICK_CYCLES", 0x165, Access.RW,
                 "Clock cycles per tick of connection time (0: time moves only by CONN_TICK).",
                 reset=0),
        Register("CONN_TICK", 0x166, Access.STROBE,
                 "Write n: advance connection time by n ticks at once."),
        Register("CONN_NOW", 0x167, Access.RO, "Connection time in ticks."),
        Register("CONN_FLUSH", 0x168, Access.STROBE,
                 "Write 1: clear every entry (the scrubber walks the table; CONN_STATUS.flushing "
                 "is 1 until it is done)."),
        Register("CONN_STATUS", 0x169, Access.RO, "Connection table status.",
                 fields=(("flushing", 0, 1),)),
        Register("MAC_STAT", 0x150, Access.RO,
                 "Ethernet MAC receive counters (board tops; 0 without MACs): word "
                 f"{len(MAC_COUNTER_NAMES)} * port + n counts {', '.join(MAC_COUNTER_NAMES)}.",
                 count=MAC_PORTS * len(MAC_COUNTER_NAMES)),
    ]
    out = []
    for reg in regs:
        if reg.name == "RSS_KEY":
            # Arrays share one reset value, so the key is split into ten single registers.
            out.extend(Register(f"RSS_KEY{i}", reg.offset + i, reg.access,
                                f"Toeplitz key bytes {4 * i}-{4 * i + 3} (big-endian).",
                                reset=key_words[i], committed=True) for i in range(10))
        else:
            out.append(reg)
    return tuple(out)


def registers(p: Params = DEFAULT_PARAMS) -> tuple[Register, ...]:
    """The register map for a given parameter set (checked for overlaps, and for reset values
    outside a register's fields)."""
    regs = _registers(p)
    used: dict[int, str] = {}
    for reg in regs:
        if reg.reset & ~reg.mask:
            raise AssertionError(f"register {reg.name}: reset {reg.reset:#x} outside its fields")
        if reg.indexed and reg.access is not Access.RO:
            raise AssertionError(f"register {reg.name}: only read-only registers are indexed")
        for i in range(reg.count):
            addr = reg.offset + i
            if addr in used:
                raise AssertionError(f"register {reg.name} overlaps {used[addr]} at {addr:#x}")
            used[addr] = reg.name
    return regs


REGISTERS = registers()
REG = {r.name: r for r in REGISTERS}
ID_MAGIC = 0x534C4231
ADDR_BITS = 10


def params_word(p: Params) -> int:
    """Value of the PARAMS register for ``p``."""
    return pack_register("PARAMS", width=p.width, vip_bits=p.vip_bits, group_bits=p.group_bits,
                         real_bits=p.real_bits, index_bits=p.index_bits,
                         conn_bucket_bits=p.conn_bucket_bits,
                         conn_ways_log2=p.conn_ways.bit_length() - 1,
                         stateless=int(not p.stateful))


def params_from_word(word: int) -> Params:
    """The parameters a device reports in its PARAMS register (what the firmware must manage
    it with).  A table of one entry reads as two (its index has one bit either way);
    ``pbind_buckets`` and ``max_frame`` are not in the word and keep their defaults.

    Raises
    ------
    ValueError
        When the word cannot come from a dispatch core (a width or size out of range).
    """
    f = unpack_register("PARAMS", word)
    return Params(width=f["width"], n_vips=1 << f["vip_bits"], n_groups=1 << f["group_bits"],
                  n_reals=1 << f["real_bits"], table_stride=1 << f["index_bits"],
                  conn_buckets=1 << f["conn_bucket_bits"], conn_ways=1 << f["conn_ways_log2"],
                  stateful=not f["stateless"])


@functools.lru_cache(maxsize=None)
def _register_map(p: Params) -> dict[str, Register]:
    return {r.name: r for r in registers(p)}


def pack_register(name: str, params: Params = DEFAULT_PARAMS, **values: int) -> int:
    """Pack named fields of register ``name`` into a word (unknown or too-wide fields refused).

    Some fields sit where ``params`` puts them (TABLE_ENTRY's group follows the table index,
    whose width is the table's): pass the parameters of the core the word is for.
    """
    reg = _register_map(params)[name]
    fields = {f[0]: f for f in reg.fields}
    word = 0
    for fname, value in values.items():
        if fname not in fields:
            raise KeyError(f"{name} has no field {fname!r}")
        _, lsb, width = fields[fname]
        if not 0 <= value < 1 << width:
            raise ValueError(f"{name}.{fname} = {value} does not fit in {width} bits")
        word |= value << lsb
    return word


def unpack_register(name: str, word: int, params: Params = DEFAULT_PARAMS) -> dict[str, int]:
    """The fields of register ``name`` in ``word``, by name (as laid out for ``params``)."""
    return {fname: word >> lsb & (1 << width) - 1
            for fname, lsb, width in _register_map(params)[name].fields}


# --------------------------------------------------------------------------------------------
# Management bridge: framed register access over the UART
# --------------------------------------------------------------------------------------------

#: Default serial rate of the management UART (8N1); others are chosen at build time.
UART_DEFAULT_BAUD = 115200
#: First byte of a request / of a response.
BRIDGE_SYNC_REQUEST = 0xA5
BRIDGE_SYNC_RESPONSE = 0x5A
#: Most 32-bit words in one request (the bridge buffers a write whole before its CRC is known).
BRIDGE_MAX_BURST = 128
#: A request whose bytes stop for this many byte times is abandoned (no response).
BRIDGE_TIMEOUT_BYTES = 4
BRIDGE_REQUEST_HEADER = 6   # sync, seq, cmd, addr (2, big-endian), count
BRIDGE_RESPONSE_HEADER = 4  # sync, seq, status, count
BRIDGE_CRC_BYTES = 4


class BridgeCmd(enum.IntEnum):
    """Request commands.  Multi-byte fields are big-endian; the CRC is CRC-32 (IEEE 802.3, as
    ``zlib.crc32``) over every byte after the sync byte, sent big-endian."""
    READ = 1        #: read ``count`` words from ``addr``, ``addr + 1``, ...
    WRITE = 2       #: write ``count`` words to ``addr``, ``addr + 1``, ...
    WRITE_SAME = 3  #: write ``count`` words to ``addr`` (table bursts into TABLE_DATA/ENTRY)


class BridgeStatus(enum.IntEnum):
    """Response status.  Anything but OK means nothing was written; the host may resend."""
    OK = 0
    BAD_CRC = 1   #: CRC mismatch (the seq echoed may itself be corrupt)
    BAD_CMD = 2   #: unknown command
    BAD_LEN = 3   #: count 0 or above BRIDGE_MAX_BURST
    REPEAT = 4    #: a write with the sequence number of the last one: not executed again


BRIDGE_DOC = """\
Request:  A5 | seq | cmd | addr_hi | addr_lo | count | data (4 x count bytes, writes only) | crc32
Response: 5A | seq | status | count | data (4 x count bytes, reads with status OK) | crc32

A write is executed only after its CRC has checked, so a corrupted or truncated request writes
nothing.  The bridge remembers the sequence number of the last request it executed: a write that
arrives again with the same number (the host resending after a lost response) is answered
REPEAT and not executed twice, so strobes (TABLE_DATA, COMMIT) are never doubled.  The host
gives each new request the next number (mod 256) and opens a session with a read, which sets
the remembered number.  A request that stops for BRIDGE_TIMEOUT_BYTES byte times is dropped
with no response; the host times out and resends.
"""


# --------------------------------------------------------------------------------------------
# Hash → table index
# --------------------------------------------------------------------------------------------

def maglev_indices(hash32: int, table_size: int) -> tuple[int, int]:
    """Primary and rehash Maglev indices for a 32-bit flow hash.

    The upper 16 bits scaled to ``[0, M)`` give the primary slot, the lower 16 bits the rehash
    slot used when the primary real is down (a multiply and a shift: no divider in hardware).
    """
    hi, lo = hash32 >> 16, hash32 & 0xFFFF
    return (hi * table_size) >> 16, (lo * table_size) >> 16


def render_register_doc(p: Params = DEFAULT_PARAMS) -> str:
    """Markdown register reference (``docs/registers.md`` is this text)."""
    lines = [
        "# openslb register map",
        "",
        "Generated by `openslb regdoc` from `hw/spec.py`; do not edit by hand.",
        "",
        f"Parameters: width {p.width} bits, {p.n_vips} VIPs, {p.n_groups} groups, "
        f"{p.n_reals} reals, table stride {p.table_stride}. Word addresses, 32-bit registers.",
        "",
        "A register with fields stores only its fields' bits: the others read 0 and ignore "
        "writes.",
        "",
        "| address | name | access | reset | description |",
        "|---|---|---|---|---|",
    ]
    for r in registers(p):
        addr = f"{r.offset:#05x}" + (f"-{r.offset + r.count - 1:#05x}" if r.count > 1 else "")
        desc = r.doc
        if r.fields:
            desc += " Fields: " + ", ".join(
                f"`{n}` [{lsb + w - 1}:{lsb}]" if w > 1 else f"`{n}` [{lsb}]"
                for n, lsb, w in r.fields)
        access = r.access.value + (" (commit)" if r.committed else "")
        lines.append(f"| {addr} | {r.name} | {access} | {r.reset:#x} | {desc} |")
    lines += ["", "## Global counters (COUNTER word pairs)", "", "| n | name | counts |",
              "|---|---|---|"]
    lines += [f"| {i} | {n} | {COUNTER_DOC.get(n, '')} |" for i, n in enumerate(COUNTERS)]
    lines += ["", "## Connection table entry (one way of a bucket, LSB first)", "",
              "| field | bits |", "|---|---|"]
    lines += [f"| {name} | {width} |" for name, width in conn_entry_fields(p)]
    lines += ["", "| state | value |", "|---|---|"]
    lines += [f"| {st.name} | {st.value} |" for st in ConnState]
    lines += ["", "## Drop reasons", "", "| n | reason | meaning |",
              "|---|---|---|"]
    lines += [f"| {r.value} | {r.name} | {DROP_DOC[r]} |" for r in DropReason]
    lines += ["", "## Management bridge protocol (UART)", "", "```", BRIDGE_DOC.rstrip(), "```",
              "", f"At most {BRIDGE_MAX_BURST} words per request.", "",
              "| command | value |", "|---|---|"]
    lines += [f"| {c.name} | {c.value} |" for c in BridgeCmd]
    lines += ["", "| status | value |", "|---|---|"]
    lines += [f"| {st.name} | {st.value} |" for st in BridgeStatus]
    return "\n".join(lines) + "\n"
