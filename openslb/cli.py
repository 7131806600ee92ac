"""The ``openslb`` command: one entry point for the appliance's tools.

Sub-commands import their (heavier) modules lazily so that ``openslb --help`` is instant.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def _cmd_regdoc(args: argparse.Namespace) -> int:
    from openslb.hw.spec import render_register_doc
    sys.stdout.write(render_register_doc())
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from openslb.sim.emulate import main as emulate_main
    return emulate_main(pcap_out=args.pcap, check=True, width=args.width, flows=args.flows,
                        seed=args.seed, uart_pty=args.uart_pty, live=not args.pcap_mode)


def _cmd_live(args: argparse.Namespace) -> int:
    from rich.console import Console

    from openslb.sim.emulate import live_main
    from openslb.sim.live import can_go_live
    reason = can_go_live()
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        return 1
    return live_main(Console(), requests=args.requests, fallback=False)


def _cmd_emulate(args: argparse.Namespace) -> int:
    from openslb.sim.emulate import main as emulate_main
    return emulate_main(pcap_in=args.pcap_in, pcap_out=args.pcap_out, config=args.config,
                        check=args.check, width=args.width, flows=args.flows, seed=args.seed,
                        uart_pty=args.uart_pty, clock_mhz=args.clock_mhz)


def _cmd_sim(args: argparse.Namespace) -> int:
    from openslb.sim.runner import run_all_testbenches
    return run_all_testbenches()


def _cmd_bench(args: argparse.Namespace) -> int:
    from openslb.sim.bench import main as bench_main
    return bench_main(skip_fpga=args.skip_fpga)


def _open_device(args: argparse.Namespace):
    """The register bus the CLI manages: a serial bridge (--port) or the reference model."""
    from openslb.firmware.bus import ModelBus, open_serial
    if args.port:
        return open_serial(args.port, args.baud)
    from openslb.model.device import DeviceModel
    print("no --port given: managing a local reference-model appliance", file=sys.stderr)
    return ModelBus(DeviceModel())


def _manager(args: argparse.Namespace):
    """Attach to the device and bring it to the saved configuration (or the built-in one)."""
    import threading
    from pathlib import Path

    from openslb.firmware.manager import Manager
    from openslb.firmware.regs import device_params
    from openslb.firmware.shell import run_script_config
    from openslb.firmware.slb import default_slb_config

    bus = _open_device(args)
    # the core's own table sizes and profile (a board's core is smaller than the default)
    params = device_params(bus)
    saved = Path(args.config)
    initial = (run_script_config(saved.read_text(), str(saved), params)
               if saved.exists() else default_slb_config(params=params))
    manager = Manager(bus, saved, initial, minimal_disruption=args.minimal_disruption)
    manager.program_applied()
    if args.health:
        import asyncio

        from openslb.firmware.health import HealthChecker, specs_from_config
        checker = HealthChecker(specs_from_config(manager.applied), manager.set_up)
        threading.Thread(target=lambda: asyncio.run(checker.run()), daemon=True).start()
    return manager


def _cmd_cli(args: argparse.Namespace) -> int:
    from openslb.firmware import console
    from openslb.firmware.bus import BusError
    from openslb.firmware.shell import Shell
    from openslb.firmware.slb import ConfigError
    try:
        manager = _manager(args)
    except (BusError, ConfigError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    shell = Shell(manager)
    if args.c is not None:
        return console.run_script(shell, console.split_commands(args.c), "-c")
    if args.f is not None:
        text = sys.stdin.read() if args.f == "-" else open(args.f).read()
        return console.run_script(shell, console.split_commands(text), args.f)
    if args.console:
        import serial
        port = serial.serial_for_url(args.console, baudrate=args.baud, timeout=1)
        console.serve_console(shell, port)
        return 0
    return console.interactive(shell)


def _cmd_exporter(args: argparse.Namespace) -> int:
    from openslb.firmware.bus import BusError
    from openslb.firmware.exporter import serve
    from openslb.firmware.slb import ConfigError
    try:
        manager = _manager(args)
    except (BusError, ConfigError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    host, _, port = args.listen.rpartition(":")
    serve(manager, host or "0.0.0.0", int(port), once=args.once)
    return 0


def _cmd_probe(args: argparse.Namespace) -> int:
    """Bring-up check of a management link: ID, parameters, register write/read-back."""
    import random

    from openslb.firmware.bus import BusError, open_serial
    from openslb.firmware.regs import address
    from openslb.hw.spec import unpack_register
    try:
        bus = open_serial(args.port, args.baud)
        params = bus.read(address("PARAMS"))
        fields = unpack_register("PARAMS", params)
        print(f"openslb bridge on {args.port}: " + ", ".join(f"{k} {v}" for k, v in fields.items()))
        rng = random.Random()
        # OWN_IP is staged (traffic sees it only at a COMMIT), and is written back as it was,
        # so that the next apply does not commit a probe's value
        staged = bus.read(address("OWN_IP"))
        try:
            for k in range(args.words):
                value = rng.getrandbits(32)
                bus.write(address("OWN_IP"), value)
                got = bus.read(address("OWN_IP"))
                if got != value:
                    print(f"error: wrote {value:#010x}, read back {got:#010x} (try {k})")
                    return 1
        finally:
            bus.write(address("OWN_IP"), staged)
        s = bus.stats
        print(f"{args.words} write/read-back pairs correct; {s.requests} requests, "
              f"{s.retries} resent, {s.bytes_out} bytes out, {s.bytes_in} bytes in")
        return 0
    except BusError as e:
        print(f"error: {e}")
        return 1


def _cmd_build(args: argparse.Namespace) -> int:
    from openslb.sim.board_build import build
    return build(args.board, args.baud)


def _cmd_flash(args: argparse.Namespace) -> int:
    from openslb.sim.board_build import flash
    return flash(args.board, args.flash)


def _device_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", help="serial URL of the appliance's management UART "
                                  "(/dev/ttyUSB0, /dev/pts/N, socket://host:port); "
                                  "default: a local reference-model appliance")
    p.add_argument("--baud", type=int, default=115200, help="serial rate (default 115200)")
    p.add_argument("--config", default="openslb.cfg",
                   help="saved configuration (CLI commands); the built-in one if missing")
    p.add_argument("--health", action="store_true", help="run the health checker")
    p.add_argument("--minimal-disruption", action="store_true",
                   help="rebalance tables instead of rebuilding them (fewer slots move)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="openslb", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="the emulated appliance: default config, generated traffic, "
                                   "checked against the model")
    p.add_argument("--flows", type=int, default=3000, help="client flows to generate")
    p.add_argument("--width", type=int, default=64, help="stream width in bits")
    p.add_argument("--pcap", default="out/run.pcap",
                   help="output pcaps: <name>.server.pcap, .client.pcap, .host.pcap")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--uart-pty", action="store_true",
                   help="afterwards, keep running with the management UART on a pty")
    p.add_argument("--pcap-mode", action="store_true",
                   help="replay generated traffic even where live mode could run")
    p.set_defaults(func=_cmd_run)
    p = sub.add_parser("emulate", help="replay a pcap through the emulated appliance")
    p.add_argument("--pcap-in", help="frames to replay (default: generated traffic)")
    p.add_argument("--pcap-out", default="out/emulate.pcap",
                   help="output pcaps: <name>.server.pcap, .client.pcap, .host.pcap")
    p.add_argument("--config", help="configuration script (CLI commands, as saved by 'save')")
    p.add_argument("--check", action="store_true",
                   help="compare every output frame and counter with the reference model")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--flows", type=int, default=3000, help="generated client flows")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--uart-pty", action="store_true",
                   help="afterwards, keep running with the management UART on a pty")
    p.add_argument("--clock-mhz", type=float, default=156.25,
                   help="core clock for simulated time (default 156.25)")
    p.set_defaults(func=_cmd_emulate)
    p = sub.add_parser("live", help="live mode: real clients and servers in network namespaces "
                                    "through the emulated appliance (root)")
    p.add_argument("--requests", type=int, default=600, help="HTTP requests to send")
    p.set_defaults(func=_cmd_live)
    p = sub.add_parser("sim", help="run every cocotb HDL testbench and print a summary")
    p.set_defaults(func=_cmd_sim)
    p = sub.add_parser("bench", help="run the benchmarks, JSON under bench/results/")
    p.add_argument("--skip-fpga", action="store_true", help="skip the yosys/nextpnr run")
    p.set_defaults(func=_cmd_bench)
    p = sub.add_parser("cli", help="the management CLI (Alteon-style menus)")
    _device_args(p)
    p.add_argument("-c", metavar="CMDS", help="run commands separated by ';' and exit")
    p.add_argument("-f", metavar="FILE", help="run the commands of FILE ('-' = stdin) and exit")
    p.add_argument("--console", metavar="URL",
                   help="serve the CLI on this serial port / pty instead of the terminal")
    p.set_defaults(func=_cmd_cli)
    p = sub.add_parser("exporter", help="Prometheus exporter of the appliance counters")
    _device_args(p)
    p.add_argument("--listen", default=":9108", help="address:port to serve /metrics on")
    p.add_argument("--once", action="store_true", help="serve one scrape and exit (tests)")
    p.set_defaults(func=_cmd_exporter)
    p = sub.add_parser("probe", help="check a management link: ID, parameters, read-back")
    p.add_argument("--port", required=True, help="serial URL (/dev/ttyUSB1, /dev/pts/N, ...)")
    p.add_argument("--baud", type=int, default=115200)
    p.add_argument("--words", type=int, default=32, help="write/read-back pairs")
    p.set_defaults(func=_cmd_probe)
    p = sub.add_parser("build", help="synthesise, place and route and pack a board's bitstream")
    p.add_argument("--board", default="versa_ecp5", help="versa_ecp5, colorlight_5a75b, icebreaker")
    p.add_argument("--baud", type=int, default=115200,
                   help="management UART rate, fixed in the bitstream (default 115200)")
    p.set_defaults(func=_cmd_build)
    p = sub.add_parser("flash", help="program a board with openFPGALoader")
    p.add_argument("--board", default="versa_ecp5")
    p.add_argument("--flash", action="store_true", help="write the SPI flash, not the SRAM")
    p.set_defaults(func=_cmd_flash)
    p = sub.add_parser("regdoc", help="print the register reference (Markdown)")
    p.set_defaults(func=_cmd_regdoc)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
