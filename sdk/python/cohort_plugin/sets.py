"""Sets of configured values that a plugin checks customer symbols against."""

from typing import Callable, Dict, Iterable

from . import explain, plugin


class SymbolSet:
    """Exact strings, interned once: membership is a lookup of a number."""

    __slots__ = ("_symbols",)

    def __init__(self, values: Iterable[str]):
        self._symbols = frozenset(plugin.intern(v) for v in values)

    def __contains__(self, symbol: int) -> bool:
        return symbol in self._symbols

    def any(self, symbols: Iterable[int]) -> bool:
        """Whether any of `symbols` is in the set."""
        return not self._symbols.isdisjoint(symbols)

    def names(self) -> str:
        """The set as an explanation shows it: "`a`, `b`"."""
        return ", ".join(sorted(explain.quoted(s) for s in self._symbols))


class SymbolMemo:
    """A yes-or-no answer per symbol, worked out once: the text of a symbol is fetched
    from the host (a string copy across the boundary) the first time only."""

    __slots__ = ("_answers",)

    def __init__(self):
        self._answers: Dict[int, bool] = {}

    def get_or(self, symbol: int, compute: Callable[[int], bool]) -> bool:
        answer = self._answers.get(symbol)
        if answer is None:
            answer = bool(compute(symbol))
            self._answers[symbol] = answer
        return answer


def caseless(text: str) -> str:
    """The form both sides are compared in: trimmed and lower-cased."""
    return text.strip().lower()


class CaselessSet:
    """Strings compared without regard to case (`Google` is `google`): platforms spell
    method names as they like, and an operator should not have to guess which."""

    __slots__ = ("_words", "_seen")

    def __init__(self, values: Iterable[str]):
        self._words = frozenset(caseless(v) for v in values)
        self._seen = SymbolMemo()

    def _known(self, symbol: int) -> bool:
        text = plugin.symbol_text(symbol)
        return text is not None and caseless(text) in self._words

    def __contains__(self, symbol: int) -> bool:
        return self._seen.get_or(symbol, self._known)

    def any(self, symbols: Iterable[int]) -> bool:
        """Whether any of `symbols` is in the set."""
        return any(s in self for s in symbols)

    def names(self) -> str:
        """The set as an explanation shows it, in lower case: "`google`, `phone`"."""
        return ", ".join(sorted(f"`{w}`" for w in self._words))
