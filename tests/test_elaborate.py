"""Every stream width elaborates and converts to Verilog (what a board build starts from)."""

import pytest
from amaranth.back import verilog

from openslb.hw.pipeline import DispatchCore
from openslb.hw.spec import Params


@pytest.mark.parametrize("width", [8, 16, 32, 64, 128])
def test_core_converts(width):
    # small tables keep the conversion quick; the default-size core is built by the RTL tests
    p = Params(width=width, n_groups=2, n_reals=32, table_stride=64, max_frame=256)
    text = verilog.convert(DispatchCore(p), name="dispatch_core", emit_src=False)
    assert "module dispatch_core" in text
    assert f"input [{width + width // 8 + 1}:0] i__payload" in text
