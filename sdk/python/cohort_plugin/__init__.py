"""The guest side of Cohort's plugin contract (`cohort:plugin@0.3.0`, see `wit/`), for
condition plugins written in Python and built with componentize-py.

A plugin author subclasses `Plugin` and exports it:

    import cohort_plugin as cohort

    class Vip(cohort.Plugin):
        @classmethod
        def describe(cls):
            return cohort.Info(id="vip", version="0.1.0", description="...",
                               config_schema={...}, reads=cohort.Fields.TAGS)

        @classmethod
        def prepare(cls, config):
            cfg = cohort.config.parse(config, {"tags": [str]})
            return cls(cohort.SymbolSet(cfg["tags"]))

        def __init__(self, tags):
            self.tags = tags

        def evaluate(self, as_of, customer):
            return self.tags.any(customer.tags)

    Condition = cohort.export(Vip)

The generated bindings (`wit_world`) stay behind this package: an author never writes
against them, so a new contract version can change them without touching plugins.
"""

from . import config, country, explain
from .config import ConfigErrors, Problems
from .customers import Customer, Customers
from .explain import facts, shown_time, value_text
from .plugin import (
    FOREVER,
    BatchError,
    Capability,
    Fields,
    Info,
    PayerKind,
    Plugin,
    SubscriptionStatus,
    Undecided,
    VerificationStatus,
    export,
    intern,
    symbol_text,
)
from .sets import CaselessSet, SymbolMemo, SymbolSet

__all__ = [
    "FOREVER",
    "BatchError",
    "Capability",
    "CaselessSet",
    "ConfigErrors",
    "Customer",
    "Customers",
    "Fields",
    "Info",
    "PayerKind",
    "Plugin",
    "Problems",
    "SubscriptionStatus",
    "SymbolMemo",
    "SymbolSet",
    "Undecided",
    "VerificationStatus",
    "config",
    "country",
    "explain",
    "export",
    "facts",
    "intern",
    "shown_time",
    "symbol_text",
    "value_text",
]
