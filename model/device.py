"""Register-level model of the dispatch core: what a register bus master sees.

:class:`DeviceModel` answers reads and writes exactly as the RTL register bank and the blocks
behind it do (staged committed registers, the two Maglev banks, TABLE_DATA / TABLE_ENTRY /
TABLE_RADDR, the real MAC table, counter snapshots and statistics), and carries traffic through
the reference model (:class:`~openslb.model.pipeline.Appliance`) programmed from those registers.
It is the "reference model" backend of the firmware's register bus and the device behind
:class:`~openslb.model.bridge.BridgeModel`.
"""

from __future__ import annotations

import numpy as np

from openslb.hw import spec
from openslb.hw.spec import (CONN_TIMEOUT_MAX, COUNTERS, ID_MAGIC, Access, ConnTimeout, Params,
                             params_word, registers)
from openslb.model.pipeline import Appliance, Result

__all__ = ["DeviceModel"]


def _metric(word: int) -> spec.Metric:
    """GROUP_METRIC.metric as the selector reads it (the unused code 3 acts as hash)."""
    value = word & 3
    return spec.Metric(value) if value in spec.Metric._value2member_map_ else spec.Metric.HASH


class DeviceModel:
    """A freshly reset dispatch core with parameters ``params``."""

    def __init__(self, params: Params = spec.DEFAULT_PARAMS) -> None:
        self.params = params
        self.regs = {r.name: r for r in registers(params)}
        self.by_addr = {}
        for r in self.regs.values():
            for k in range(r.count):
                self.by_addr[r.offset + k] = (r, k)
        self.staged = {a: r.reset for a, (r, _) in self.by_addr.items() if r.access is Access.RW}
        self.active = dict(self.staged)
        self.bank = 0
        self.banks = np.zeros((2, params.n_groups, params.table_stride), dtype=np.int16)
        self.macs = np.zeros(params.n_reals, dtype=np.uint64)
        self.real_ips = [0] * params.n_reals
        self.members = np.zeros((2, params.n_groups, spec.member_words(params)), dtype=np.uint32)
        self.wr_ptr = 0
        self.table_rdata = 0
        self.snapshot = [0] * (2 * len(COUNTERS))
        self.stat = [0] * 4
        self.mac_stat = [0] * self.regs["MAC_STAT"].count   # no MACs in front of the model
        self.appliance = Appliance.__new__(Appliance)
        self.appliance.counters = {name: 0 for name in COUNTERS}
        self.appliance.vip_stats, self.appliance.real_stats = {}, {}
        self.appliance.real_limits = {}
        self._load()

    # -- the bus ------------------------------------------------------------------------------
    def read(self, addr: int) -> int:
        entry = self.by_addr.get(addr)
        if entry is None:
            return 0
        reg, k = entry
        if reg.access is Access.RW:
            return self.staged[addr]
        if reg.access is Access.STROBE:
            return 0
        return {
            "ID": lambda: ID_MAGIC, "PARAMS": lambda: params_word(self.params),
            "ACTIVE_BANK": lambda: self.bank, "TABLE_RDATA": lambda: self.table_rdata,
            "COUNTER": lambda: self.snapshot[k], "STAT": lambda: self.stat[k],
            "MAC_STAT": lambda: self.mac_stat[k],
            "CONN_NOW": lambda: self.appliance.conn.now & 0xFFFFFFFF,
            "CONN_STATUS": lambda: 0,   # a flush is done at once here
            "REAL_CONNS": self._real_conns,
        }[reg.name]()

    def write(self, addr: int, value: int) -> None:
        value &= 0xFFFFFFFF
        entry = self.by_addr.get(addr)
        if entry is None:
            return
        reg, _ = entry
        if reg.access is Access.RW:
            value &= reg.mask
            self.staged[addr] = value
            if not reg.committed:
                self.active[addr] = value
                if reg.name == "HEALTH":
                    self.appliance.health = self._health()
        elif reg.access is Access.STROBE:
            getattr(self, f"_strobe_{reg.name.lower()}")(value)

    # -- strobes ------------------------------------------------------------------------------
    def _slot_fields(self, value: int, real_field: bool) -> tuple[int, int]:
        p = self.params
        base = 8 if real_field else 0
        index = value >> base & (1 << p.index_bits) - 1
        group = value >> (base + p.index_bits) & (1 << p.group_bits) - 1
        return group, index

    def _strobe_table_addr(self, value: int) -> None:
        self.wr_ptr = value & (1 << (self.params.index_bits + self.params.group_bits)) - 1

    def _strobe_table_data(self, value: int) -> None:
        p = self.params
        group, index = self.wr_ptr >> p.index_bits, self.wr_ptr & (1 << p.index_bits) - 1
        self.banks[1 - self.bank, group, index] = value & (1 << p.real_bits) - 1
        self.wr_ptr = (self.wr_ptr + 1) & (1 << (p.index_bits + p.group_bits)) - 1

    def _strobe_table_entry(self, value: int) -> None:
        group, index = self._slot_fields(value, real_field=True)
        self.banks[1 - self.bank, group, index] = value & (1 << self.params.real_bits) - 1

    def _strobe_table_raddr(self, value: int) -> None:
        group, index = self._slot_fields(value, real_field=False)
        bank = self.bank if value >> 24 & 1 else 1 - self.bank
        self.table_rdata = 1 << 31 | int(self.banks[bank, group, index])

    def _strobe_commit(self, value: int) -> None:
        self.bank ^= 1
        self.active = dict(self.staged)
        self._load()

    def _strobe_real_mac_lo(self, value: int) -> None:
        real = self._selected_real()
        hi = self.staged[self.regs["REAL_MAC_HI"].offset] & 0xFFFF
        self.macs[real] = hi << 32 | value
        self.appliance.real_macs = self._real_macs()

    def _strobe_real_ip(self, value: int) -> None:
        real = self._selected_real()
        self.real_ips[real] = value
        self.appliance.real_ips = dict(enumerate(self.real_ips))

    def _selected_real(self) -> int:
        return self.staged[self.regs["REAL_SEL"].offset] & (1 << self.params.real_bits) - 1

    def _strobe_member_data(self, value: int) -> None:
        sel = self.staged[self.regs["MEMBER_SEL"].offset]
        word, group = sel & 7, sel >> 8 & (1 << self.params.group_bits) - 1
        if word < spec.member_words(self.params):
            self.members[1 - self.bank, group, word] = value

    def _members(self) -> dict[int, set[int]]:
        p = self.params
        return {g: {32 * w + b for w in range(spec.member_words(p)) for b in range(32)
                    if self.members[self.bank, g, w] >> b & 1 and 32 * w + b < p.n_reals}
                for g in range(p.n_groups)}

    def _strobe_real_limit(self, value: int) -> None:
        maxcon = value & (1 << spec.MAXCON_BITS) - 1
        weight = value >> spec.MAXCON_BITS & (1 << spec.WEIGHT_BITS) - 1
        self.appliance.real_limits[self._selected_real()] = (maxcon, weight)

    def _real_conns(self) -> int:
        real = self._selected_real()
        return (self.appliance.conn.conns(real) & (1 << spec.MAXCON_BITS) - 1
                | int(self.appliance.full(real)) << 31)

    def _strobe_conn_tick(self, value: int) -> None:
        self.appliance.advance(value)

    def _strobe_conn_flush(self, value: int) -> None:
        self.appliance.flush_connections()

    def _strobe_snapshot(self, value: int) -> None:
        for n, name in enumerate(COUNTERS):
            v = self.appliance.counters[name] & (1 << 64) - 1
            self.snapshot[2 * n], self.snapshot[2 * n + 1] = v & 0xFFFFFFFF, v >> 32

    def _strobe_stat_sel(self, value: int) -> None:
        stats = self.appliance.real_stats if value >> 15 & 1 else self.appliance.vip_stats
        packets, nbytes = stats.get(value & 0xFF, (0, 0))
        self.stat = [packets & 0xFFFFFFFF, packets >> 32 & 0xFFFFFFFF,
                     nbytes & 0xFFFFFFFF, nbytes >> 32 & 0xFFFFFFFF]

    # -- the data plane -----------------------------------------------------------------------
    def _reg(self, name: str, index: int = 0) -> int:
        return self.active[self.regs[name].offset + index]

    def _health(self) -> int:
        words = self.regs["HEALTH"].count
        return sum(self._reg("HEALTH", k) << (32 * k) for k in range(words))

    def _real_macs(self) -> dict[int, bytes]:
        return {r: int(mac).to_bytes(6, "big") for r, mac in enumerate(self.macs) if mac}

    def _load(self) -> None:
        p = self.params
        vips = []
        vip_addr = {}
        for k in range(p.n_vips):
            service = self._reg("VIP_SERVICE", k)
            vip_addr[k] = (self._reg("VIP_IP", k),
                           None if service >> 25 & 1 else service & 0xFFFF)
            if service >> 24 & 1:
                port = None if service >> 25 & 1 else service & 0xFFFF
                vips.append((k, self._reg("VIP_IP", k), service >> 16 & 0xFF, port,
                             self._reg("VIP_GROUP", k) & (1 << p.group_bits) - 1))
        backups = {g: self._reg("GROUP_BACKUP", g) & 0xFF for g in range(p.n_groups)
                   if self._reg("GROUP_BACKUP", g) >> 8 & 1}
        key = b"".join(self._reg(f"RSS_KEY{k}").to_bytes(4, "big") for k in range(10))
        self.appliance.load(
            params=p, own_mac=(self._reg("OWN_MAC_HI") << 32 & 0xFFFF00000000
                               | self._reg("OWN_MAC_LO")).to_bytes(6, "big"),
            own_ip=self._reg("OWN_IP"), rss_key=key, table_size=self._reg("TABLE_SIZE"),
            tables={g: self.banks[self.bank, g] for g in range(p.n_groups)},
            health=self._health(), real_macs=self._real_macs(), vip_table=vips, backups=backups,
            miss_to_host=bool(self._reg("CTRL") & 1),
            conn_enabled=bool(self._reg("CONN_CTRL") & 1),
            conn_timeouts={kind: self._reg("CONN_TIMEOUT", int(kind)) & CONN_TIMEOUT_MAX
                           for kind in ConnTimeout},
            pbind_timeout=self._reg("PBIND_TIMEOUT") & CONN_TIMEOUT_MAX,
            pbind_prefix=self._reg("PBIND_PREFIX") & 7,
            vip_pbind={k: bool(self._reg("VIP_PBIND", k) >> 1 & 1)
                       for k, *_ in vips if self._reg("VIP_PBIND", k) & 1},
            real_ips=dict(enumerate(self.real_ips)),
            vip_nat={k: self._reg("VIP_RPORT", k) & 0xFFFF for k, *_ in vips
                     if (self._reg("VIP_SERVICE", k) >> 26 & 3) == spec.Mode.NAT},
            vip_addr=vip_addr,
            client_gw_mac=(self._reg("CLIENT_GW_MAC_HI") << 32 & 0xFFFF00000000
                           | self._reg("CLIENT_GW_MAC_LO")).to_bytes(6, "big"),
            group_metric={g: _metric(self._reg("GROUP_METRIC", g)) for g in range(p.n_groups)},
            members=self._members())

    def process(self, frames: list[bytes], ports=None) -> Result:
        """Carry frames (received on ``ports``, default the client side) through the core as
        programmed now."""
        return self.appliance.process(frames, ports)

    def table(self, group: int, active: bool = True) -> np.ndarray:
        """A bank's slots of one group (``[:TABLE_SIZE]``)."""
        bank = self.bank if active else 1 - self.bank
        return self.banks[bank, group, :self._reg("TABLE_SIZE")].copy()
