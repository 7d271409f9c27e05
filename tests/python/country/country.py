"""The standard `country` condition, written in Python: the country the customer
declared at sign-up is one of the configured ISO 3166-1 alpha-2 codes (any case). A
customer without a declared country does not match. It must give exactly the verdicts
and configuration errors of plugins/country."""

import cohort_plugin as cohort

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "countries": {
            "description": "ISO 3166-1 alpha-2 codes, any case",
            "type": "array",
            "items": {"type": "string", "pattern": "^[A-Za-z]{2}$"},
            "minItems": 1,
        }
    },
    "required": ["countries"],
    "additionalProperties": False,
}


class Country(cohort.Plugin):
    @classmethod
    def describe(cls):
        return cohort.Info(
            id="country",
            version="0.1.0",
            description="The country the customer declared at sign-up is one of a set.",
            config_schema=SCHEMA,
            reads=cohort.Fields.COUNTRY,
        )

    @classmethod
    def prepare(cls, config):
        cfg = cohort.config.parse(config, {"countries": [str]})
        problems = cohort.Problems()
        codes = cohort.country.codes(problems, "/countries", cfg["countries"])
        return problems.finish(cls(cohort.SymbolSet(codes)))

    def __init__(self, countries):
        self.countries = countries

    def evaluate(self, as_of, customer):
        return customer.country in self.countries

    TIMELESS = True

    def explain(self, as_of, customer):
        wanted = self.countries.names()
        if customer.country is None:
            return f"no country is given; the rule asks for one of {wanted}"
        is_ = "is" if customer.country in self.countries else "is not"
        return f"country {cohort.explain.quoted(customer.country)} {is_} one of {wanted}"


Condition = cohort.export(Country)
