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
    from openslb.sim.run import main as run_main
    return run_main(flows=args.flows, width=args.width, pcap=args.pcap, seed=args.seed)


def _cmd_sim(args: argparse.Namespace) -> int:
    from openslb.sim.runner import run_all_testbenches
    return run_all_testbenches()


def _cmd_bench(args: argparse.Namespace) -> int:
    from openslb.sim.bench import main as bench_main
    return bench_main(skip_fpga=args.skip_fpga)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="openslb", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="replay generated client traffic through the simulated RTL")
    p.add_argument("--flows", type=int, default=400, help="client flows to generate")
    p.add_argument("--width", type=int, default=64, help="stream width in bits")
    p.add_argument("--pcap", default="out/run.pcap", help="where to write the output frames")
    p.add_argument("--seed", type=int, default=1)
    p.set_defaults(func=_cmd_run)
    p = sub.add_parser("sim", help="run every cocotb HDL testbench and print a summary")
    p.set_defaults(func=_cmd_sim)
    p = sub.add_parser("bench", help="run the benchmarks, JSON under bench/results/")
    p.add_argument("--skip-fpga", action="store_true", help="skip the yosys/nextpnr run")
    p.set_defaults(func=_cmd_bench)
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
