"""Cores of other sizes and the stateless profile: PARAMS describes the core, the firmware
manages the core it finds (not the default one), and a stateless core tracks nothing whatever
its registers say, in the model as in the firmware's checks."""

import dataclasses

import pytest

from openslb import cli
from openslb.firmware.bus import ModelBus
from openslb.firmware.program import program
from openslb.firmware.regs import NotACore, address, device_params
from openslb.firmware.shell import CliError, Shell
from openslb.firmware.slb import ConfigError, SlbConfig, default_slb_config
from openslb.firmware.manager import Manager
from openslb.hw.boards import BOARDS
from openslb.hw.spec import DEFAULT_PARAMS, Params, params_from_word, params_word
from openslb.model.config import ConfigError as ModelConfigError
from openslb.model.device import DeviceModel
from openslb.model.pipeline import Appliance
from openslb.sim import traffic

COLORLIGHT = BOARDS["colorlight_5a75b"].params
#: the fields PARAMS carries (pbind_buckets and max_frame are not in it)
WORD_FIELDS = ("width", "n_vips", "n_groups", "n_reals", "table_stride", "conn_buckets",
               "conn_ways", "stateful")


@pytest.mark.parametrize("params", [DEFAULT_PARAMS, Params(width=8), Params(width=128),
                                    Params(conn_ways=8, conn_buckets=16384)]
                         + [b.params for b in BOARDS.values()],
                         ids=["default", "w8", "w128", "ways8"] + list(BOARDS))
def test_params_word_round_trip(params):
    back = params_from_word(params_word(params))
    assert {f: getattr(back, f) for f in WORD_FIELDS} == {f: getattr(params, f)
                                                         for f in WORD_FIELDS}


def test_stateless_is_bit_31_and_the_full_core_word_is_unchanged():
    assert params_word(DEFAULT_PARAMS) == 0x54C84440     # what every full core has reported
    assert params_word(dataclasses.replace(DEFAULT_PARAMS, stateful=False)) == 0xD4C84440
    assert not COLORLIGHT.stateful


def test_device_params_read_from_the_core():
    small = Params(n_vips=8, n_groups=4, n_reals=64, stateful=False)
    got = device_params(ModelBus(DeviceModel(small)))
    assert (got.n_vips, got.n_groups, got.n_reals, got.stateful) == (8, 4, 64, False)


class _Silent:
    """A link where nothing answers as a core would (all reads 0)."""

    def read(self, addr):
        return 0

    def write(self, addr, value):
        pass


def test_device_params_refuses_what_is_not_a_core():
    with pytest.raises(NotACore, match="ID reads 0x00000000"):
        device_params(_Silent())


class _BadParams(_Silent):
    def read(self, addr):
        return {address("ID"): 0x534C4231, address("PARAMS"): 0x3}.get(addr, 0)


def test_device_params_refuses_an_impossible_params_word():
    with pytest.raises(NotACore, match="PARAMS reads 0x00000003"):
        device_params(_BadParams())


def _cli(monkeypatch, tmp_path, capsys, params, commands):
    device = DeviceModel(params)
    monkeypatch.setattr(cli, "_open_device", lambda args: ModelBus(device))
    rc = cli.main(["cli", "--config", str(tmp_path / "none.cfg"), "-c", commands])
    return rc, capsys.readouterr().out, device


def test_cli_manages_the_core_it_finds(monkeypatch, tmp_path, capsys):
    # the Colorlight's core has 4 groups: group 5 exists on the default core, not here
    rc, out, _ = _cli(monkeypatch, tmp_path, capsys, COLORLIGHT, "/cfg/slb/group 5/add 1")
    assert rc == 1 and "group: 5 out of range 1-3" in out
    rc, out, _ = _cli(monkeypatch, tmp_path, capsys, COLORLIGHT, "/cfg/slb/adv/conn ena")
    assert rc == 1 and "stateless profile" in out
    rc, out, device = _cli(monkeypatch, tmp_path, capsys, COLORLIGHT,
                           "/cfg/slb/group 3/add 1; apply")
    assert rc == 0 and "apply complete" in out
    assert device.table(3).any()
    # the full core still takes group 5 and the connection table
    rc, out, _ = _cli(monkeypatch, tmp_path, capsys, DEFAULT_PARAMS,
                      "/cfg/slb/group 5/add 1; /cfg/slb/adv/conn ena; apply")
    assert rc == 0, out


def test_stateless_configuration_refuses_the_connection_table():
    cfg = default_slb_config(params=COLORLIGHT)
    cfg.validate()
    cfg.conn.enabled = True
    with pytest.raises(ConfigError, match="/cfg/slb/adv/conn ena: .*stateless profile"):
        cfg.validate()
    sh = Shell(Manager(ModelBus(DeviceModel(COLORLIGHT)), None, default_slb_config(
        params=COLORLIGHT)))
    with pytest.raises(CliError, match="conn ena: .*stateless"):
        sh.execute("/cfg/slb/adv/conn ena")
    assert sh.execute("/cfg/slb/adv/conn dis") == ""
    model_cfg = traffic.test_config()
    model_cfg.params = COLORLIGHT
    model_cfg.conn.enabled = True
    with pytest.raises(ModelConfigError, match="stateless"):
        Appliance(model_cfg)


def test_stateless_device_model_tracks_nothing_whatever_its_registers_say():
    import random
    full_params = Params(n_vips=8, n_groups=4, n_reals=64)
    stateless = dataclasses.replace(full_params, stateful=False)
    cfg = traffic.every_feature_config(full_params)
    writes = program(cfg)
    frames = traffic.client_flows(cfg, 300, random.Random(3))
    counts, full, nat = {}, {}, {}
    for params in (full_params, stateless):
        device = DeviceModel(params)
        for addr, value in writes:
            device.write(addr, value)
        device.process(frames)
        counts[params.stateful] = device.appliance.counters
        full[params.stateful] = device.appliance.full(4)
        nat[params.stateful] = device.appliance.vip_nat
    assert counts[True]["CONN_NEW"] > 0 and counts[True]["PBIND_NEW"] > 0
    assert full[True], "real 4 (maxcon 3) never reached its limit on the full core"
    assert counts[False]["CONN_NEW"] == counts[False]["PBIND_NEW"] == 0
    assert not full[False]
    # the NAT services (entries 3 and 4) are forwarded as DSR by a stateless core
    assert set(nat[True]) == {3, 4} and nat[False] == {}
    assert counts[False]["RX_FRAMES"] == counts[True]["RX_FRAMES"] == len(frames)


def test_exporter_refuses_a_link_without_a_core(monkeypatch, capsys):
    monkeypatch.setattr(cli, "_open_device", lambda args: _Silent())
    assert cli.main(["exporter", "--listen", "127.0.0.1:0", "--once"]) == 1
    assert "no openslb core answers" in capsys.readouterr().err
