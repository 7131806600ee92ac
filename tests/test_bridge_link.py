"""The register bridge protocol, end to end through the firmware's serial code and the bridge
model: framing, CRC, duplicates, and a table upload over a noisy line."""

import random

import pytest

from openslb.firmware.bus import BusError, SerialBus, bursts, encode_request
from openslb.firmware.links import ModelLink
from openslb.firmware.programmer import Programmer
from openslb.firmware.regs import address
from openslb.firmware.slb import default_slb_config
from openslb.hw.spec import ID_MAGIC, BridgeCmd, BridgeStatus
from openslb.model.bridge import BridgeModel, response_bytes
from openslb.model.device import DeviceModel
from openslb.model.pipeline import Appliance
from openslb.sim.traffic import client_flows


def test_write_then_read_and_repeat_is_not_executed_twice():
    dev = DeviceModel()
    bridge = BridgeModel(dev)
    table_data = address("TABLE_DATA")
    assert bridge.feed(encode_request(1, BridgeCmd.READ, address("ID"), 1)) == \
        response_bytes(1, BridgeStatus.OK, [ID_MAGIC])
    req = encode_request(2, BridgeCmd.WRITE_SAME, table_data, 3, [1, 2, 3])
    assert bridge.feed(req) == response_bytes(2, BridgeStatus.OK, [])
    assert bridge.feed(req) == response_bytes(2, BridgeStatus.REPEAT, [])  # resent: not redone
    assert list(dev.banks[1, 0, :4]) == [1, 2, 3, 0]


@pytest.mark.parametrize("mangle,status", [
    (lambda r: r[:-1] + bytes([r[-1] ^ 1]), BridgeStatus.BAD_CRC),
    (lambda r: r[:2] + b"\x09" + r[3:], BridgeStatus.BAD_CMD),
    (lambda r: r[:5] + b"\x00" + r[6:], BridgeStatus.BAD_LEN),
])
def test_bad_requests_write_nothing(mangle, status):
    dev = DeviceModel()
    bridge = BridgeModel(dev)
    req = mangle(encode_request(7, BridgeCmd.WRITE, address("OWN_IP"), 1, [0x0A0000FE]))
    assert bridge.feed(req)[2] == status
    assert dev.read(address("OWN_IP")) == 0


def test_truncated_request_is_abandoned_after_the_quiet_time():
    dev = DeviceModel()
    bridge = BridgeModel(dev)
    req = encode_request(3, BridgeCmd.WRITE, address("OWN_IP"), 1, [5])
    assert bridge.feed(req[:7]) == b""
    bridge.timeout()
    assert bridge.feed(req) == response_bytes(3, BridgeStatus.OK, [])
    assert dev.read(address("OWN_IP")) == 5


def test_bursts_group_runs():
    writes = [(5, 1), (6, 2), (7, 3), (9, 0), (9, 1), (9, 2), (11, 4)]
    assert [(c, a, len(w)) for c, a, w in bursts(writes)] == [
        (BridgeCmd.WRITE, 5, 3), (BridgeCmd.WRITE_SAME, 9, 3), (BridgeCmd.WRITE, 11, 1)]


def test_dead_link_fails_with_a_clear_error():
    class Dead:
        timeout = 0.01
        def write(self, data): return len(data)
        def read(self, n=1): return b""
        def reset_input_buffer(self): pass
    with pytest.raises(BusError, match="READ 1 word.*failed after 3 tries: no response"):
        SerialBus(Dead(), retries=2, min_timeout=0.001)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_noisy_link_table_upload_ends_exactly_at_the_config(seed):
    """Corrupted, dropped and duplicated bytes during a whole apply and a delta apply: the
    device ends exactly at the intended state, and traffic never sees a mix of the two."""
    dev = DeviceModel()
    rng = random.Random(seed)
    slb = default_slb_config(8)
    slb.table_size = 1021
    # the connection table off: the probe replays the same flows after every request, and
    # what is checked here is the table switch, not per-connection consistency
    slb.conn.enabled = False
    first = slb.compile()
    probe = client_flows(first, 40, rng)
    models = [None]

    def check_traffic():
        # after every request the bridge executed: traffic is the old or the new config
        got = [d.real for d in map(dev.appliance.decide, probe)]
        assert any(got == want for want in models[-2:] if want is not None), \
            "traffic saw a partial apply"

    link = ModelLink(BridgeModel(dev), corrupt=0.002, drop=0.002, duplicate=0.002, seed=seed,
                     on_request=lambda: models[-1] is not None and check_traffic())
    bus = SerialBus(link, retries=30, min_timeout=0.001)
    prog = Programmer(bus)
    prog.apply(first)
    models.append([Appliance(first).decide(f).real for f in probe])
    check_traffic()
    slb.reals[3].enabled = False
    slb.reals[5].weight = 4
    second = slb.compile()
    models.append([Appliance(second).decide(f).real for f in probe])
    prog.apply(second)
    assert bus.stats.retries > 0, "the noise should have forced some resends"
    # read everything back over the same noisy link
    back = prog.read_back_tables([1], second.table_size, second.params)
    assert (back[1] == second.table(1)).all()
    for k in range(16):
        want = 0 if k != 0 else dev.staged[address("VIP_SERVICE", 0)]
        assert bus.read(address("VIP_SERVICE", k)) == want
    assert bus.read(address("HEALTH", 0)) == second.health_mask() & 0xFFFFFFFF
    assert [d.real for d in map(dev.appliance.decide, probe)] == models[-1]
