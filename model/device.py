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
from openslb.hw.spec import (COUNTERS, ID_MAGIC, Access, ConnTimeout, Params, pack_register,
                             params_word, registers, unpack_register)
from openslb.model.pipeline import Appliance, Result

__all__ = ["DeviceModel"]


def _metric(value: int) -> spec.Metric:
    """GROUP_METRIC.metric as the selector reads it (the unused code 3 acts as hash)."""
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
    def _fields(self, name: str, value: int) -> dict[str, int]:
        """The fields of a word written to register ``name`` (laid out for this core)."""
        return unpack_register(name, value, self.params)

    def _strobe_table_addr(self, value: int) -> None:
        f = self._fields("TABLE_ADDR", value)
        self.wr_ptr = f["group"] << self.params.index_bits | f["index"]

    def _strobe_table_data(self, value: int) -> None:
        p = self.params
        group, index = self.wr_ptr >> p.index_bits, self.wr_ptr & (1 << p.index_bits) - 1
        self.banks[1 - self.bank, group, index] = value & (1 << p.real_bits) - 1
        self.wr_ptr = (self.wr_ptr + 1) & (1 << (p.index_bits + p.group_bits)) - 1

    def _strobe_table_entry(self, value: int) -> None:
        f = self._fields("TABLE_ENTRY", value)
        self.banks[1 - self.bank, f["group"], f["index"]] = f["real"]

    def _strobe_table_raddr(self, value: int) -> None:
        f = self._fields("TABLE_RADDR", value)
        bank = self.bank if f["bank"] else 1 - self.bank
        self.table_rdata = pack_register("TABLE_RDATA", self.params, valid=1,
                                         real=int(self.banks[bank, f["group"], f["index"]]))

    def _strobe_commit(self, value: int) -> None:
        self.bank ^= 1
        self.active = dict(self.staged)
        self._load()

    def _strobe_real_mac_lo(self, value: int) -> None:
        real = self._selected_real()
        # MAC bytes 0-1, the low half of REAL_MAC_HI (as the selector takes them)
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
        f = self._fields("MEMBER_SEL", self.staged[self.regs["MEMBER_SEL"].offset])
        word, group = f["word"], f["group"]
        if word < spec.member_words(self.params):
            self.members[1 - self.bank, group, word] = value

    def _members(self) -> dict[int, set[int]]:
        p = self.params
        return {g: {32 * w + b for w in range(spec.member_words(p)) for b in range(32)
                    if self.members[self.bank, g, w] >> b & 1 and 32 * w + b < p.n_reals}
                for g in range(p.n_groups)}

    def _strobe_real_limit(self, value: int) -> None:
        f = self._fields("REAL_LIMIT", value)
        self.appliance.real_limits[self._selected_real()] = (f["maxcon"], f["weight"])

    def _real_conns(self) -> int:
        real = self._selected_real()
        return pack_register("REAL_CONNS", self.params,
                             conns=self.appliance.conn.conns(real) & (1 << spec.MAXCON_BITS) - 1,
                             full=int(self.appliance.full(real)))

    def _strobe_conn_tick(self, value: int) -> None:
        self.appliance.advance(value)

    def _strobe_conn_flush(self, value: int) -> None:
        self.appliance.flush_connections()

    def _strobe_snapshot(self, value: int) -> None:
        for n, name in enumerate(COUNTERS):
            v = self.appliance.counters[name] & (1 << 64) - 1
            self.snapshot[2 * n], self.snapshot[2 * n + 1] = v & 0xFFFFFFFF, v >> 32

    def _strobe_stat_sel(self, value: int) -> None:
        f = self._fields("STAT_SEL", value)
        stats = self.appliance.real_stats if f["real"] else self.appliance.vip_stats
        packets, nbytes = stats.get(f["index"], (0, 0))
        self.stat = [packets & 0xFFFFFFFF, packets >> 32 & 0xFFFFFFFF,
                     nbytes & 0xFFFFFFFF, nbytes >> 32 & 0xFFFFFFFF]

    # -- the data plane -----------------------------------------------------------------------
    def _reg(self, name: str, index: int = 0) -> int:
        return self.active[self.regs[name].offset + index]

    def _active_fields(self, name: str, index: int = 0) -> dict[str, int]:
        return self._fields(name, self._reg(name, index))

    def _mac(self, name: str) -> bytes:
        """A MAC address held in registers ``name``_HI (its top two bytes) and ``name``_LO."""
        hi = self._active_fields(f"{name}_HI")["mac_hi"]
        return (hi << 32 | self._reg(f"{name}_LO")).to_bytes(6, "big")

    def _health(self) -> int:
        words = self.regs["HEALTH"].count
        return sum(self._reg("HEALTH", k) << (32 * k) for k in range(words))

    def _real_macs(self) -> dict[int, bytes]:
        return {r: int(mac).to_bytes(6, "big") for r, mac in enumerate(self.macs) if mac}

    def _load(self) -> None:
        p = self.params
        vips = []
        vip_addr = {}
        nat = {}
        for k in range(p.n_vips):
            service = self._active_fields("VIP_SERVICE", k)
            port = None if service["any_port"] else service["port"]
            vip_addr[k] = (self._reg("VIP_IP", k), port)
            if service["enable"]:
                vips.append((k, self._reg("VIP_IP", k), service["proto"], port,
                             self._active_fields("VIP_GROUP", k)["group"]))
                if service["mode"] == spec.Mode.NAT:
                    nat[k] = self._active_fields("VIP_RPORT", k)["rport"]
        backups = {g: backup["real"] for g in range(p.n_groups)
                   if (backup := self._active_fields("GROUP_BACKUP", g))["enable"]}
        pbind = {k: self._active_fields("VIP_PBIND", k) for k, *_ in vips}
        key = b"".join(self._reg(f"RSS_KEY{k}").to_bytes(4, "big") for k in range(10))
        self.appliance.load(
            params=p, own_mac=self._mac("OWN_MAC"),
            own_ip=self._reg("OWN_IP"), rss_key=key, table_size=self._reg("TABLE_SIZE"),
            tables={g: self.banks[self.bank, g] for g in range(p.n_groups)},
            health=self._health(), real_macs=self._real_macs(), vip_table=vips, backups=backups,
            miss_to_host=bool(self._active_fields("CTRL")["miss_to_host"]),
            conn_enabled=bool(self._active_fields("CONN_CTRL")["enable"]),
            conn_timeouts={kind: self._active_fields("CONN_TIMEOUT", int(kind))["ticks"]
                           for kind in ConnTimeout},
            pbind_timeout=self._active_fields("PBIND_TIMEOUT")["ticks"],
            pbind_prefix=self._active_fields("PBIND_PREFIX")["bytes"],
            vip_pbind={k: bool(f["per_port"]) for k, f in pbind.items() if f["enable"]},
            real_ips=dict(enumerate(self.real_ips)),
            vip_nat=nat,
            vip_addr=vip_addr,
            client_gw_mac=self._mac("CLIENT_GW_MAC"),
            group_metric={g: _metric(self._active_fields("GROUP_METRIC", g)["metric"])
                          for g in range(p.n_groups)},
            members=self._members())

    def process(self, frames: list[bytes], ports=None) -> Result:
        """Carry frames (received on ``ports``, default the client side) through the core as
        programmed now."""
        return self.appliance.process(frames, ports)

    def table(self, group: int, active: bool = True) -> np.ndarray:
        """A bank's slots of one group (``[:TABLE_SIZE]``)."""
        bank = self.bank if active else 1 - self.bank
        return self.banks[bank, group, :self._reg("TABLE_SIZE")].copy()
