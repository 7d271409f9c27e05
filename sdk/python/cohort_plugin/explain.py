"""Facts in an operator's words, for explanations: the Rust SDK's `facts`, in Python."""

import time
from typing import List, Optional

from wit_world.imports import host, types


def quoted(symbol: int) -> str:
    """A symbol's text in backticks, as explanations quote what a platform sent."""
    text = host.symbol_text(symbol)
    return f"`{text}`" if text is not None else f"symbol {symbol}"


def shown_time(t: int) -> str:
    """A timestamp in RFC 3339, UTC: `2026-11-01T00:00:00Z`."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def value_text(value) -> str:
    """An attribute's value as an explanation shows it."""
    if isinstance(value, types.Value_Text):
        return quoted(value.value)
    if isinstance(value, types.Value_Decimal):
        units, scale = value.value.units, value.value.scale
        digits = str(abs(units)).rjust(scale + 1, "0")
        sign = "-" if units < 0 else ""
        return sign + (digits if scale == 0 else f"{digits[:-scale]}.{digits[-scale:]}")
    if isinstance(value, types.Value_Timestamp):
        return shown_time(value.value)
    return str(value.value)


def _symbols(symbols: List[int]) -> str:
    return ", ".join(quoted(s) for s in symbols) if symbols else "none"


def _optional(symbol: Optional[int]) -> str:
    return quoted(symbol) if symbol is not None else "none"


def _listed(items: List[str]) -> str:
    return ", ".join(items) if items else "none"


def facts(customer, reads: types.Fields) -> str:
    """The facts of `customer` that `reads` names, as a sentence: "country `US`; tags
    `vip`, `b2b`"."""
    F = types.Fields
    parts = []
    if reads & F.COUNTRY:
        parts.append(f"country {_optional(customer.country)}")
    if reads & F.REGISTRATION_IP:
        ip = customer.registration_ip
        parts.append(f"registration IP {f'`{ip}`' if ip is not None else 'none'}")
    if reads & F.REGISTRATION_PARAMS:
        params = [f"{quoted(p.key)} = {quoted(p.value)}" for p in customer.registration_params]
        parts.append(f"registration parameters {_listed(params)}")
    if reads & F.PAYERS:
        payers = [
            f"{'active' if p.active else 'inactive'} {p.kind.name.lower().replace('_', ' ')}"
            for p in customer.payers
        ]
        parts.append(f"payers {_listed(payers)}")
    if reads & F.PROVIDER:
        parts.append(f"provider {_optional(customer.provider)}")
    if reads & F.AUTH_METHODS:
        parts.append(f"sign-in methods {_symbols(customer.auth_methods)}")
    if reads & F.VERIFICATION_STATUS:
        parts.append(f"verification {customer.verification_status.name.lower()}")
    if reads & F.VERIFICATION_METHODS:
        parts.append(f"verification methods {_symbols(customer.verification_methods)}")
    if reads & F.SUBSCRIPTIONS:
        subscriptions = []
        for s in customer.subscriptions:
            end = f" to {shown_time(s.end)}" if s.end is not None else ""
            subscriptions.append(
                f"{quoted(s.product)} {s.status.name.lower()} from {shown_time(s.start)}{end}"
            )
        parts.append(f"subscriptions {_listed(subscriptions)}")
    if reads & F.TAGS:
        parts.append(f"tags {_symbols(customer.tags)}")
    if reads & F.ATTRIBUTES:
        attributes = [f"{quoted(a.key)} = {value_text(a.value)}" for a in customer.attributes]
        parts.append(f"attributes {_listed(attributes)}")
    if reads & F.REGISTERED:
        at = customer.registered
        parts.append(f"registered {shown_time(at) if at is not None else 'at no known time'}")
    return "; ".join(parts) if parts else "reads no facts of the customer"
