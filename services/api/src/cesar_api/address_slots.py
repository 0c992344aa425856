"""How many event streams each client address holds open in this process."""

from __future__ import annotations

__all__ = ["AddressSlots"]


class AddressSlots:
    """A per-address count of open connections, capped at ``per_address``.

    Per process: with several replicas an address may hold ``per_address`` streams on each
    (the connection *rate*, shared through Redis, bounds the total over time)."""

    def __init__(self, per_address: int) -> None:
        self.per_address = per_address
        self._open: dict[str, int] = {}

    def acquire(self, address: str) -> bool:
        """Take a slot for ``address``; False when it already holds ``per_address``."""
        held = self._open.get(address, 0)
        if held >= self.per_address:
            return False
        self._open[address] = held + 1
        return True

    def release(self, address: str) -> None:
        held = self._open.get(address, 0) - 1
        if held > 0:
            self._open[address] = held
        else:
            self._open.pop(address, None)

    def held(self, address: str) -> int:
        return self._open.get(address, 0)
