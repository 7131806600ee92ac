"""The one description: register map, generated docs, firmware accessors and programmer."""

from pathlib import Path

import pytest

from openslb.firmware.program import program
from openslb.firmware.regs import Registers, address, pack_fields
from openslb.hw.spec import COUNTERS, REG, Params, registers, render_register_doc
from openslb.model.config import default_config

DOC = Path(__file__).resolve().parent.parent / "docs" / "registers.md"


def test_register_doc_is_generated_from_spec():
    assert DOC.read_text() == render_register_doc(), "run 'make regdoc' to refresh docs/registers.md"


@pytest.mark.parametrize("width", [8, 64, 128])
def test_map_has_no_overlap_for_any_params(width):
    regs = registers(Params(width=width, n_vips=32, n_groups=32))
    addrs = [r.offset + k for r in regs for k in range(r.count)]
    assert len(addrs) == len(set(addrs)) and max(addrs) < 1 << 10


def test_bad_params_refused():
    with pytest.raises(ValueError, match="width"):
        Params(width=24)
    with pytest.raises(ValueError, match="power of two"):
        Params(n_vips=12)


def test_pack_fields():
    assert pack_fields("VIP_SERVICE", port=80, proto=6, enable=1) == 80 | 6 << 16 | 1 << 24
    with pytest.raises(KeyError, match="no field"):
        pack_fields("VIP_SERVICE", colour=1)
    with pytest.raises(ValueError, match="does not fit"):
        pack_fields("VIP_SERVICE", port=70000)


class FakeBus:
    def __init__(self):
        self.mem = {}

    def read(self, addr):
        return self.mem.get(addr, 0)

    def write(self, addr, value):
        self.mem[addr] = value


def test_registers_accessor_and_counter_words():
    bus = FakeBus()
    regs = Registers(bus)
    regs.write("OWN_IP", 0x0A000001)
    assert bus.mem[REG["OWN_IP"].offset] == 0x0A000001
    with pytest.raises(PermissionError):
        regs.write("ID", 1)
    n = COUNTERS.index("TX_SERVER")
    bus.mem[address("COUNTER", 2 * n)] = 5
    bus.mem[address("COUNTER", 2 * n + 1)] = 1
    assert regs.counters()["TX_SERVER"] == 5 | 1 << 32


def test_program_ends_with_one_commit_after_tables_and_health():
    cfg = default_config()
    writes = program(cfg)
    addrs = [a for a, _ in writes]
    commit = addrs.index(address("COMMIT"))
    assert commit == len(addrs) - 1
    data = [k for k, a in enumerate(addrs) if a == address("TABLE_DATA")]
    assert len(data) == cfg.table_size and max(data) < commit
    assert addrs[commit - 8:commit] == [address("HEALTH", k) for k in range(8)]
    assert writes[commit - 8][1] == 0b11110  # reals 1-4 up


def test_programmer_sends_a_changed_real_as_its_whole_select_group():
    """A changed limit resends REAL_SEL with every register it selects, for that real only."""
    from openslb.firmware.bus import ModelBus
    from openslb.firmware.programmer import Programmer
    from openslb.firmware.slb import default_slb_config
    from openslb.model.device import DeviceModel

    class RecordingBus(ModelBus):
        def write_many(self, writes):
            self.sent = getattr(self, "sent", []) + list(writes)
            super().write_many(writes)

    slb = default_slb_config()
    slb.conn.enabled = True
    bus = RecordingBus(DeviceModel())
    prog = Programmer(bus)
    prog.apply(slb.compile())
    bus.sent = []
    slb.reals[2].maxcon = 7
    prog.apply(slb.compile())
    selected = [address(n) for n in ("REAL_SEL", "REAL_MAC_HI", "REAL_MAC_LO", "REAL_IP",
                                     "REAL_LIMIT")]
    real_writes = [(a, v) for a, v in bus.sent if a in selected]
    assert [a for a, _ in real_writes] == selected
    assert real_writes[0][1] == 2
    assert real_writes[-1][1] == pack_fields("REAL_LIMIT", maxcon=7, weight=slb.reals[2].weight)


@pytest.mark.parametrize("board", ["icebreaker", "versa_ecp5", "colorlight_5a75b"])
def test_programmer_places_each_groups_table_for_the_boards_core(board):
    """TABLE_ENTRY's group field follows the table index, whose width is the core's: the
    iCEBreaker's 256-slot tables put it at bit 16, not 20.  The tables written and read back
    through the register-level model are each group's own."""
    from openslb.firmware.bus import ModelBus
    from openslb.firmware.programmer import Programmer
    from openslb.firmware.slb import default_slb_config
    from openslb.hw.boards import BOARDS
    from openslb.model.device import DeviceModel

    p = BOARDS[board].params
    cfg = default_slb_config(4, p).compile()
    dev = DeviceModel(p)
    prog = Programmer(ModelBus(dev))
    prog.apply(cfg)
    assert (dev.table(1) == cfg.table(1)).all()
    assert not dev.table(0).any(), "group 1's slots landed in group 0"
    back = prog.read_back_tables([0, 1], cfg.table_size, p)
    assert (back[1] == cfg.table(1)).all() and not back[0].any()
