"""Condition "tagged": the customer carries one of the configured tags.

Start here: rename the file and the id, say which customer facts you read, parse and
check your configuration in `prepare`, decide in `evaluate`. Build it with

    python3 ../cohort/sdk/python/build-plugin tagged.py -o tagged.wasm
"""

import cohort_plugin as cohort


class Tagged(cohort.Plugin):
    @classmethod
    def describe(cls):
        return cohort.Info(
            # Lower-case letters, digits and `-`; unique among the plugins a host loads.
            id="tagged",
            version="0.1.0",
            description="The customer carries one of a set of tags.",
            config_schema={
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {
                    "tags": {
                        "type": "array",
                        "items": {"type": "string", "minLength": 1},
                        "minItems": 1,
                    }
                },
                "required": ["tags"],
                "additionalProperties": False,
            },
            # Only these facts are sent to the plugin; everything else reads as empty.
            reads=cohort.Fields.TAGS,
            # Nothing beyond computation. `cohort.Capability.DATA_DIR` would ask for a
            # read-only data directory, seen as /data.
            capabilities=[],
        )

    @classmethod
    def prepare(cls, config):
        # The configuration an operator writes, as JSON. A wrong type, a missing field
        # or an unknown key (a typo) is reported at its field.
        cfg = cohort.config.parse(config, {"tags": [str]})
        problems = cohort.Problems()
        problems.names("/tags", cfg["tags"])
        # Built once per rule, used for every customer.
        return problems.finish(cls(cohort.CaselessSet(cfg["tags"])))

    def __init__(self, tags):
        self.tags = tags

    def evaluate(self, as_of, customer):
        # True, False, or cohort.Undecided("why"): never False for "something went
        # wrong". An exception raised here is no decision for this customer.
        return self.tags.any(customer.tags)

    # Tags do not change with the time: the verdict holds until the customer's facts
    # do. (Left False, every rescan would ask again.)
    TIMELESS = True

    def explain(self, as_of, customer):
        # What an operator reads beside the verdict in `cohort explain`.
        tags = ", ".join(f"`{cohort.symbol_text(t)}`" for t in customer.tags) or "no tags"
        return f"tags {tags}; the rule asks for one of {self.tags.names()}"


Condition = cohort.export(Tagged)
