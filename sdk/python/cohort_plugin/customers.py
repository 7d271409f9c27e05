"""A row view over the column batch that crosses the boundary."""

import ipaddress
from typing import Iterator, List, Optional, Union

from wit_world.imports import types

# The contract marks "no value" in a column of optional symbols with all bits set.
ABSENT = 0xFFFFFFFF


class Customers:
    """A batch, column by column: the columns the plugin declared in `reads` are filled,
    every other one is empty. Iterating gives each customer in order."""

    __slots__ = (
        "count",
        "country",
        "registration_ip",
        "registration_params",
        "payers",
        "provider",
        "auth_methods",
        "verification_status",
        "verification_methods",
        "subscriptions",
        "tags",
        "attributes",
        "registered",
    )

    def __init__(self, batch: types.Customers):
        self.count = batch.count
        empty = types.RaggedSymbols([], [])
        self.country: List[int] = []
        self.registration_ip: list = []
        self.registration_params = empty
        self.payers = empty
        self.provider: List[int] = []
        self.auth_methods = empty
        self.verification_status: list = []
        self.verification_methods = empty
        self.subscriptions = empty
        self.tags = empty
        self.attributes = empty
        self.registered: List[int] = []
        # A column sent twice is a host bug; the later one wins rather than failing.
        for column in batch.columns:
            setattr(self, _COLUMN_FIELDS[type(column)], column.value)

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator["Customer"]:
        return (Customer(self, i) for i in range(self.count))


_COLUMN_FIELDS = {
    types.Column_Country: "country",
    types.Column_RegistrationIp: "registration_ip",
    types.Column_RegistrationParams: "registration_params",
    types.Column_Payers: "payers",
    types.Column_Provider: "provider",
    types.Column_AuthMethods: "auth_methods",
    types.Column_VerificationStatus: "verification_status",
    types.Column_VerificationMethods: "verification_methods",
    types.Column_Subscriptions: "subscriptions",
    types.Column_Tags: "tags",
    types.Column_Attributes: "attributes",
    types.Column_Registered: "registered",
}

# The contract marks a customer whose registration time the platform did not give
# with the least timestamp.
UNREGISTERED = -(2**63)


def _symbol(column: List[int], i: int) -> Optional[int]:
    if i < len(column):
        symbol = column[i]
        if symbol != ABSENT:
            return symbol
    return None


def _ragged(column, i: int) -> list:
    """Customer `i`'s part of a ragged column; empty for a column that was not sent or
    offsets that do not make sense."""
    offsets = column.offsets
    if i + 1 >= len(offsets):
        return []
    start, end = offsets[i], offsets[i + 1]
    if start > end or end > len(column.items):
        return []
    return column.items[start:end]


class Customer:
    """One customer of a batch. A fact the plugin did not declare in `reads` reads as
    absent (None, empty, `VerificationStatus.UNVERIFIED`). Symbols are ints: compare
    them with symbols from `intern`, in `prepare`."""

    __slots__ = ("_batch", "index")

    def __init__(self, batch: Customers, index: int):
        self._batch = batch
        self.index = index

    @property
    def country(self) -> Optional[int]:
        """The country declared at sign-up: upper-case ISO 3166-1 alpha-2, interned."""
        return _symbol(self._batch.country, self.index)

    @property
    def registration_ip(self) -> Union[ipaddress.IPv4Address, ipaddress.IPv6Address, None]:
        column = self._batch.registration_ip
        address = column[self.index] if self.index < len(column) else None
        if address is None:
            return None
        if isinstance(address, types.IpAddress_Ipv4):
            return ipaddress.IPv4Address(address.value)
        high, low = address.value
        return ipaddress.IPv6Address((high << 64) | low)

    @property
    def registration_params(self) -> list:
        """`Pair`s of symbols: `.key` and `.value`."""
        return _ragged(self._batch.registration_params, self.index)

    @property
    def payers(self) -> list:
        """`Payer`s: `.kind` (a `PayerKind`) and `.active`."""
        return _ragged(self._batch.payers, self.index)

    @property
    def provider(self) -> Optional[int]:
        return _symbol(self._batch.provider, self.index)

    @property
    def auth_methods(self) -> List[int]:
        return _ragged(self._batch.auth_methods, self.index)

    @property
    def verification_status(self) -> types.VerificationStatus:
        column = self._batch.verification_status
        if self.index < len(column):
            return column[self.index]
        return types.VerificationStatus.UNVERIFIED

    @property
    def verification_methods(self) -> List[int]:
        return _ragged(self._batch.verification_methods, self.index)

    @property
    def subscriptions(self) -> list:
        """`Subscription`s: `.product` (a symbol), `.status`, `.start`, `.end` (None
        for open-ended; exclusive)."""
        return _ragged(self._batch.subscriptions, self.index)

    @property
    def tags(self) -> List[int]:
        return _ragged(self._batch.tags, self.index)

    @property
    def attributes(self) -> list:
        """`Attribute`s: `.key` (a symbol) and `.value`, one of `Value_Text` (a symbol),
        `Value_Integer`, `Value_Decimal` (`.units` times ten to the minus `.scale`) and
        `Value_Timestamp`, each with its `.value`."""
        return _ragged(self._batch.attributes, self.index)

    def attribute(self, key: int):
        """The `Value` of the attribute named by the symbol `key`, or None."""
        for attribute in self.attributes:
            if attribute.key == key:
                return attribute.value
        return None

    @property
    def registered(self) -> Optional[int]:
        """When the customer registered with the platform, if the platform said."""
        column = self._batch.registered
        if self.index < len(column) and column[self.index] != UNREGISTERED:
            return column[self.index]
        return None
