"""The standard `registration-param` condition, written in Python: a named parameter of
the customer's registration request is present, equals a value, is one of several
values, or matches a regular expression. It must give exactly the verdicts of
plugins/registration-param, and its configuration errors at the same fields."""

import re

import cohort_plugin as cohort

# Patterns longer than this (in bytes, as the Rust plugin counts) are refused: a rule is
# written by a person, and a huge pattern is a mistake or an attack on compile time.
MAX_PATTERN = 1000

OPERATORS = ("present", "equals", "one-of", "matches")

# Which field each operator takes.
OPERAND = {"present": None, "equals": "value", "one-of": "values", "matches": "pattern"}

SPEC = {
    "name": str,
    "operator": cohort.config.one_of(*OPERATORS),
    "value": cohort.config.optional(str),
    "values": cohort.config.optional([str]),
    "pattern": cohort.config.optional(str),
}


class RegistrationParam(cohort.Plugin):
    @classmethod
    def describe(cls):
        return cohort.Info(
            id="registration-param",
            version="0.1.0",
            description="A parameter of the registration request is present, equals a "
            "value, is one of several, or matches a pattern.",
            config_schema={
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {
                    "name": {
                        "description": "the parameter's name, exactly",
                        "type": "string",
                        "minLength": 1,
                    },
                    "operator": {"enum": list(OPERATORS)},
                    "value": {"description": "for equals", "type": "string"},
                    "values": {
                        "description": "for one-of",
                        "type": "array",
                        "items": {"type": "string"},
                        "minItems": 1,
                    },
                    "pattern": {
                        "description": "for matches: a regular expression, unanchored",
                        "type": "string",
                        "maxLength": MAX_PATTERN,
                    },
                },
                "required": ["name", "operator"],
                "additionalProperties": False,
            },
            reads=cohort.Fields.REGISTRATION_PARAMS,
        )

    @classmethod
    def prepare(cls, config):
        cfg = cohort.config.parse(config, SPEC)
        problems = cohort.Problems()
        if not cfg["name"].strip():
            problems.push("/name", "must not be blank")
        operator = cfg["operator"]
        for field in ("value", "values", "pattern"):
            if cfg[field] is not None and OPERAND[operator] != field:
                problems.push(f"/{field}", f"not used by operator `{operator}`")
        test = None
        operand = OPERAND[operator]
        if operand is not None and cfg[operand] is None:
            problems.push(f"/{operand}", f"required by operator `{operator}`")
        elif operator == "equals":
            test = cohort.SymbolSet([cfg["value"]]).__contains__
        elif operator == "one-of":
            if not cfg["values"]:
                problems.push("/values", "name at least one value")
            test = cohort.SymbolSet(cfg["values"]).__contains__
        elif operator == "matches":
            pattern = cfg["pattern"]
            if len(pattern.encode()) > MAX_PATTERN:
                problems.push("/pattern", f"longer than {MAX_PATTERN} characters")
            else:
                try:
                    test = _matcher(re.compile(pattern))
                except re.error as e:
                    problems.push("/pattern", f"`{pattern}` is not a valid pattern: {e}")
        return problems.finish(cls(cohort.intern(cfg["name"]), test))

    def __init__(self, name, test):
        self.name = name
        self.test = test

    def evaluate(self, as_of, customer):
        name, test = self.name, self.test
        return any(
            p.key == name and (test is None or test(p.value))
            for p in customer.registration_params
        )


def _matcher(regex):
    """Whether a value's text matches, worked out once per distinct value."""
    seen = cohort.SymbolMemo()

    def matches(symbol):
        text = cohort.symbol_text(symbol)
        return text is not None and regex.search(text) is not None

    return lambda symbol: seen.get_or(symbol, matches)


Condition = cohort.export(RegistrationParam)
