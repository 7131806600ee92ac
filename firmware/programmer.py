"""Programs a compiled configuration into the core with as few register writes as possible.

The programmer keeps a mirror of what it last wrote: the registers, both Maglev banks of every
group, and the health mask. An apply then writes only what differs: changed registers (each
real's REAL_SEL and the registers it selects as one group: MAC, IP, limits), the Maglev slots
that differ from the shadow bank (one TABLE_ENTRY word per slot, which names its slot, so a
resent burst can never shift a table), then one COMMIT, and waits for ACTIVE_BANK to flip.
Everything before the COMMIT is staged (shadow bank, committed registers), so an apply that
fails on the way changes nothing that traffic sees; the mirror is then forgotten and the next
apply writes everything.
The health mask is live: :meth:`Programmer.set_health` changes it at once.
"""

from __future__ import annotations

import numpy as np

from openslb.firmware.program import REAL_SELECTED, health_writes, member_writes, program
from openslb.firmware.regs import address, pack_fields
from openslb.hw.spec import DEFAULT_PARAMS, Params, unpack_register
from openslb.model.config import ApplianceConfig
from openslb.model.maglev import EMPTY, rebalance

__all__ = ["Programmer", "ApplyReport"]

Write = tuple[int, int]
TABLE_REGS = {address("TABLE_ADDR"), address("TABLE_DATA"), address("COMMIT")}
#: Written into the shadow bank like the tables: sent with every apply, for every group.
BANKED_REGS = {address("MEMBER_SEL"), address("MEMBER_DATA")}
#: Written after REAL_SEL, for the real it names (one item per real).
REAL_SELECTED_REGS = {address(name) for name in REAL_SELECTED}


class ApplyReport:
    def __init__(self) -> None:
        self.register_writes = 0
        self.table_words = 0

    def __repr__(self) -> str:
        return f"{self.register_writes} register writes, {self.table_words} table words"


def _register_items(cfg: ApplianceConfig) -> dict[tuple, list[Write]]:
    """The non-table writes of :func:`program`, keyed so that changed ones can be found."""
    items: dict[tuple, list[Write]] = {}
    writes = [w for w in program(cfg) if w[0] not in TABLE_REGS | BANKED_REGS]
    health = {address("HEALTH", k) for k in range(max(1, cfg.params.n_reals // 32))}
    k = 0
    while k < len(writes):
        addr, value = writes[k]
        if addr == address("REAL_SEL"):
            end = k + 1
            while end < len(writes) and writes[end][0] in REAL_SELECTED_REGS:
                end += 1
            items[("real", value)] = writes[k:end]
            k = end
            continue
        if addr not in health:
            items[("reg", addr)] = [writes[k]]
        k += 1
    return items


class Programmer:
    def __init__(self, bus) -> None:
        self.bus = bus
        self.forget()

    def forget(self) -> None:
        """Assume nothing about the device (the next apply writes everything)."""
        self.items: dict[tuple, list[Write]] = {}
        self.banks: dict[str, dict[int, np.ndarray]] = {"active": {}, "shadow": {}}
        self.health: int | None = None

    def apply(self, cfg: ApplianceConfig, minimal_disruption: bool = False) -> ApplyReport:
        """Bring the device to ``cfg``; with ``minimal_disruption`` each group's new table is
        :func:`~openslb.model.maglev.rebalance` of the one in service instead of a fresh
        population (fewer slots move; the table then depends on the history)."""
        report = ApplyReport()
        try:
            tables = self.tables_for(cfg, minimal_disruption)
            self._apply(cfg, tables, report)
            unknown = [g for g in tables if g not in self.banks["shadow"]]
            if unknown:
                # first upload of these groups: fill the other bank too, so that from now on
                # an apply only sends the slots that change
                self.bus.write_many(self._table_writes(
                    cfg, {g: tables[g] for g in unknown}, {}, report))
                self.banks["shadow"].update({g: tables[g] for g in unknown})
        except Exception:
            self.forget()
            raise
        return report

    def tables_for(self, cfg: ApplianceConfig, minimal_disruption: bool = False):
        out = {}
        for g, group in cfg.groups.items():
            current = self.banks["active"].get(g)
            if minimal_disruption and current is not None and len(current) == cfg.table_size:
                weights = {r: cfg.reals[r].weight for r in group.reals if cfg.reals[r].enabled}
                base = np.where(current == 0, EMPTY, current).astype(np.int16)
                table = rebalance(base, weights)
            else:
                table = cfg.table(g)
            out[g] = np.where(table == EMPTY, 0, table).astype(np.int16)
        return out

    def _table_writes(self, cfg, tables, shadows, report) -> list[Write]:
        writes: list[Write] = []
        for g, table in tables.items():
            shadow = shadows.get(g)
            if shadow is not None and len(shadow) == len(table):
                changed = np.flatnonzero(shadow != table)
            else:
                changed = np.arange(len(table))
            if len(changed) == 0:
                continue
            # TABLE_ENTRY names its slot, so every table word is idempotent: a burst that is
            # resent or split after a noisy-line failure can never shift the table
            writes += [(address("TABLE_ENTRY"), pack_fields(
                "TABLE_ENTRY", cfg.params, real=int(table[i]), index=int(i), group=g))
                for i in changed]
            report.table_words += len(changed)
        return writes

    def _apply(self, cfg: ApplianceConfig, tables, report: ApplyReport) -> None:
        p = cfg.params
        writes: list[Write] = []
        items = _register_items(cfg)
        for key, ws in items.items():
            if self.items.get(key) != ws:
                writes += ws
        report.register_writes = len(writes)
        writes += self._table_writes(cfg, tables, self.banks["shadow"], report)
        # the membership masks go to the shadow bank too; they are few, so all are sent
        for g in sorted(cfg.groups):
            writes += member_writes(g, cfg.members(g), p.n_reals)
        mask = cfg.health_mask()
        if mask != self.health:
            writes += health_writes(mask, p.n_reals)
        bank = self.bus.read(address("ACTIVE_BANK"))
        self.bus.write_many(writes + [(address("COMMIT"), 1)])
        for _ in range(100):
            if self.bus.read(address("ACTIVE_BANK")) != bank:
                break
        else:
            raise IOError("COMMIT did not take effect (ACTIVE_BANK did not flip)")
        self.items = items
        self.health = mask
        self.banks = {"active": dict(tables), "shadow": self.banks["active"]}

    def set_health(self, mask: int, n_reals: int) -> None:
        """Write the health mask words that changed (live: the next frame sees it)."""
        old = self.health
        writes = [w for k, w in enumerate(health_writes(mask, n_reals))
                  if old is None or (old >> (32 * k)) & 0xFFFFFFFF != w[1]]
        self.bus.write_many(writes)
        self.health = mask

    def read_back_tables(self, groups, table_size: int,
                         params: Params = DEFAULT_PARAMS) -> dict[int, np.ndarray]:
        """Read the active Maglev table of each group back through TABLE_RADDR/TABLE_RDATA."""
        out = {}
        for g in groups:
            slots = np.zeros(table_size, dtype=np.int16)
            for i in range(table_size):
                self.bus.write(address("TABLE_RADDR"), pack_fields(
                    "TABLE_RADDR", params, index=i, group=g, bank=1))
                for _ in range(100):
                    rdata = unpack_register("TABLE_RDATA", self.bus.read(address("TABLE_RDATA")),
                                            params)
                    if rdata["valid"]:
                        break
                else:
                    raise IOError(f"TABLE_RDATA not valid for group {g} slot {i}")
                slots[i] = rdata["real"]
            out[g] = slots
        return out
