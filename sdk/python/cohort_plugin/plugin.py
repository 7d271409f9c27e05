"""The `Plugin` class an author subclasses, and `export`, which turns it into the
component's `condition` interface."""

import json
import sys
from dataclasses import dataclass, field
from types import ModuleType
from typing import List, Optional, Union

from componentize_py_types import Err
from wit_world.imports import host, types

from .config import ConfigErrors
from .customers import Customer, Customers
from .explain import facts

# The contract's vocabulary, under the names the Rust SDK uses.
Fields = types.Fields
Capability = types.Capability
PayerKind = types.PayerKind
VerificationStatus = types.VerificationStatus
SubscriptionStatus = types.SubscriptionStatus


def intern(text: str) -> int:
    """The symbol of `text`. Call it in `prepare`, not per customer."""
    return host.intern(text)


def symbol_text(symbol: int) -> Optional[str]:
    """The string behind `symbol`, or None for a number the host never handed out.

    Crossing the boundary costs a string copy: keep what you derive per symbol (a
    `SymbolMemo` does)."""
    return host.symbol_text(symbol)


@dataclass
class Info:
    """A plugin's self-description.

    `config_schema` is a JSON Schema (draft 2020-12), as a dict or as its JSON text.
    `reads` names the customer facts the plugin reads (`Fields.TAGS | Fields.COUNTRY`):
    only those are sent, everything else reads as empty. `capabilities` is what the
    plugin asks for beyond computing (`Capability.DATA_DIR`)."""

    id: str
    version: str
    description: str
    config_schema: Union[dict, str]
    reads: Fields
    capabilities: List[Capability] = field(default_factory=list)


@dataclass
class Undecided:
    """No decision for one customer: the host leaves the customer's membership as it is
    and records `message`. Never a "no"."""

    message: str


class BatchError(Exception):
    """Raised by `evaluate_batch` when the whole batch cannot be decided (a data file
    that cannot be read): every customer of the batch gets no decision."""


Verdict = Union[bool, Undecided]

# The time a verdict that never runs out holds until: the greatest timestamp.
FOREVER = 2**63 - 1


class Plugin:
    """One condition type. Subclass it and define `describe`, `prepare` and `evaluate`."""

    @classmethod
    def describe(cls) -> Info:
        """Who the plugin is: id, version, description, configuration schema, the facts
        it reads and the capabilities it asks for. Called once, when it is loaded."""
        raise NotImplementedError(f"{cls.__name__}.describe")

    @classmethod
    def prepare(cls, config: str) -> "Plugin":
        """Check a configuration (a JSON document) and compile it into an instance.
        Raise `ConfigErrors` with every problem, each at its field's JSON Pointer;
        `config.parse` and `Problems` do this. Runs when a rule is saved and when a run
        starts, never per customer: turn strings into symbols here."""
        raise NotImplementedError(f"{cls.__name__}.prepare")

    def evaluate(self, as_of: int, customer: Customer) -> Verdict:
        """The verdict for one customer as of `as_of` (seconds since the Unix epoch):
        True (match), False (no match) or `Undecided(message)`. It must depend only on
        its arguments. An exception it raises is no decision for this customer, with
        the exception as the message: never a "no"."""
        raise NotImplementedError(f"{type(self).__name__}.evaluate")

    # Set to True when the verdict never depends on the as-of time (a country, a tag,
    # a number): every verdict then holds until the customer's facts change, and a
    # call computes and sends nothing more for it.
    TIMELESS = False

    def valid_until(self, as_of: int, customer: Customer) -> int:
        """Until when `customer`'s verdict as of `as_of` holds if its facts do not
        change: the first time after `as_of` at which it could differ. A rescan
        evaluates a customer again only once its facts change or this time comes.

        The default is the safe one: `FOREVER` for a `TIMELESS` plugin, otherwise the
        verdict holds at `as_of` only."""
        return FOREVER if self.TIMELESS else as_of + 1

    def explain(self, as_of: int, customer: Customer) -> str:
        """One short sentence, in the operator's words, of the facts behind
        `customer`'s verdict: "country `US` is not one of `DE`, `FR`". Called when
        someone asks why, never in a run. The default names the facts the plugin
        reads."""
        return facts(customer, type(self).describe().reads)

    def evaluate_batch(self, as_of: int, customers: Customers) -> List[Verdict]:
        """The verdicts of a batch, in order. Override it to share work between the
        customers of a batch, or raise `BatchError` to fail the batch as a whole."""
        evaluate = self.evaluate
        verdicts: List[Verdict] = []
        for customer in customers:
            try:
                verdicts.append(evaluate(as_of, customer))
            except Exception as e:  # the "error is no decision" rule, per customer
                verdicts.append(Undecided(_describe_exception(e)))
        return verdicts


def _describe_exception(e: Exception) -> str:
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _until(plugin: Plugin, as_of: int, customers: Customers) -> List[int]:
    """Until when each verdict holds; empty when every one holds forever. Each is
    after `as_of`, as the contract asks."""
    if plugin.TIMELESS:
        return []
    until = [max(plugin.valid_until(as_of, c), as_of + 1) for c in customers]
    return [] if all(t == FOREVER for t in until) else until


def _verdicts(verdicts: List[Verdict], count: int, until: List[int]) -> types.Verdicts:
    if len(verdicts) != count:
        raise BatchError(f"the plugin gave {len(verdicts)} verdicts for {count} customers")
    matches = bytearray(count)
    undecided = []
    for index, verdict in enumerate(verdicts):
        if verdict is True:
            matches[index] = 1
        elif isinstance(verdict, Undecided):
            undecided.append(types.Undecided(index, verdict.message))
        elif verdict is not False:
            # A truthy object (a list, a symbol) is almost always a mistake; saying so
            # beats guessing what was meant.
            undecided.append(
                types.Undecided(
                    index,
                    f"the plugin answered {verdict!r}, not True, False or Undecided",
                )
            )
    return types.Verdicts(bytes(matches), undecided, until)


def _info(info: Info) -> types.PluginInfo:
    schema = info.config_schema
    if not isinstance(schema, str):
        schema = json.dumps(schema)
    return types.PluginInfo(
        id=info.id,
        version=info.version,
        description=info.description,
        config_schema=schema,
        reads=info.reads,
        capabilities=list(info.capabilities),
    )


def export(plugin: type) -> type:
    """The component's `condition` interface for `plugin`, a `Plugin` subclass. Assign
    it to `Condition` in the module you build:

        Condition = cohort.export(MyPlugin)
    """
    if not (isinstance(plugin, type) and issubclass(plugin, Plugin)):
        raise TypeError(f"export takes a Plugin subclass, not {plugin!r}")

    class Evaluator:
        """The contract's `evaluator` resource: one prepared configuration."""

        def __init__(self, prepared: Plugin):
            self._prepared = prepared

        def evaluate(self, as_of: int, customers: types.Customers) -> types.Verdicts:
            batch = Customers(customers)
            try:
                verdicts = self._prepared.evaluate_batch(as_of, batch)
                until = _until(self._prepared, as_of, batch)
                return _verdicts(verdicts, batch.count, until)
            except BatchError as e:
                raise Err(str(e))
            except Exception as e:
                raise Err(_describe_exception(e))

        def explain(self, as_of: int, customers: types.Customers) -> List[str]:
            try:
                return [self._prepared.explain(as_of, c) for c in Customers(customers)]
            except Exception as e:
                raise Err(_describe_exception(e))

    class Condition:
        """The contract's `condition` interface."""

        def describe(self) -> types.PluginInfo:
            return _info(plugin.describe())

        def prepare(self, config: str) -> Evaluator:
            try:
                prepared = plugin.prepare(config)
            except ConfigErrors as e:
                raise Err([types.ConfigError(p.path, p.message) for p in e.errors])
            if not isinstance(prepared, Plugin):
                raise TypeError(
                    f"{plugin.__name__}.prepare returned {prepared!r}, not an instance"
                )
            return Evaluator(prepared)

    # componentize-py finds the class of an exported resource in a module named after
    # its interface.
    module = ModuleType("condition")
    module.Evaluator = Evaluator
    sys.modules["condition"] = module
    return Condition
