"""Base class of the blocks a build profile may leave out of the core.

The stateless profile (``Params.stateful`` false) has no connection table, bindings, counts or
round-robin pointers.  Such a block declares its ports in :meth:`OptionalBlock.ports`, a
function of the parameters alone, so that the selector (``_block`` in ``hw/selector.py``) can
stand in for a left-out block with ``ports(p).create()``: undriven signals that keep their
reset values.
"""

from __future__ import annotations

from amaranth.lib import wiring

from openslb.hw.spec import Params

__all__ = ["OptionalBlock"]


class OptionalBlock(wiring.Component):
    def __init__(self, params: Params) -> None:
        self.params = params
        super().__init__(self.ports(params))

    @staticmethod
    def ports(params: Params) -> wiring.Signature:
        """The block's ports for ``params``."""
        raise NotImplementedError
