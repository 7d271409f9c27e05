"""A plugin that exercises the Python SDK itself, for tests: it reads every fact and,
by its configuration's `mode`, echoes them, fails in each way a plugin can, or checks
the SDK's sets and problems."""

import cohort_plugin as cohort

MODES = ("prepare-crash", "peek", "echo", "raise", "not-a-bool", "batch-error", "crash", "caseless", "names")


def text(symbol):
    return "-" if symbol is None else cohort.symbol_text(symbol)


def texts(symbols):
    return ",".join(text(s) for s in symbols)


def pairs(items):
    return ",".join(f"{text(p.key)}={text(p.value)}" for p in items)


def peek():
    """What the sandbox lets Python see of the world: environment, clock, files and
    the network."""
    import os
    import time

    seen = [f"env={len(os.environ)}", f"clock={int(time.time())}"]
    for path in ("/etc/passwd", "/data/anything"):
        try:
            with open(path) as f:
                f.read()
            seen.append(f"{path}=readable")
        except OSError as e:
            seen.append(f"{path}=refused({type(e).__name__})")
    try:
        import socket

        socket.create_connection(("127.0.0.1", 9), timeout=1)
        seen.append("net=connected")
    except Exception as e:
        seen.append(f"net=refused({type(e).__name__})")
    return " ".join(seen)


def echo(c):
    """Every fact of a customer as one line, symbols turned back into their text."""
    subs = ",".join(
        f"{text(s.product)}:{s.status.name.lower()}:{s.start}:{s.end}" for s in c.subscriptions
    )
    payers = ",".join(f"{p.kind.name.lower()}:{p.active}" for p in c.payers)
    return (
        f"country={text(c.country)} ip={c.registration_ip} "
        f"params={pairs(c.registration_params)} payers={payers} "
        f"provider={text(c.provider)} auth={texts(c.auth_methods)} "
        f"verification={c.verification_status.name.lower()} "
        f"methods={texts(c.verification_methods)} subscriptions={subs} "
        f"tags={texts(c.tags)} "
        f"attributes={','.join(f'{text(a.key)}={cohort.value_text(a.value)}' for a in c.attributes)} "
        f"registered={c.registered}"
    )


class SdkChecks(cohort.Plugin):
    @classmethod
    def describe(cls):
        every_fact = cohort.Fields(0)
        for fact in cohort.Fields:
            every_fact |= fact
        return cohort.Info(
            id="sdk-checks",
            version="0.1.0",
            description="Exercises the Python SDK.",
            config_schema={"type": "object"},
            reads=every_fact,
        )

    @classmethod
    def prepare(cls, config):
        cfg = cohort.config.parse(
            config,
            {"mode": cohort.config.one_of(*MODES), "values": cohort.config.optional([str])},
        )
        if cfg["mode"] == "prepare-crash":
            raise RuntimeError("prepare went wrong")
        problems = cohort.Problems()
        if cfg["mode"] == "names":
            problems.names("/values", cfg["values"] or [])
        return problems.finish(cls(cfg["mode"], cohort.CaselessSet(cfg["values"] or [])))

    def __init__(self, mode, methods):
        self.mode = mode
        self.methods = methods
        self.boom = cohort.intern("boom")

    def evaluate_batch(self, as_of, customers):
        if self.mode == "batch-error":
            raise cohort.BatchError("the database is gone")
        if self.mode == "crash":
            return {}["missing"]
        return super().evaluate_batch(as_of, customers)

    def evaluate(self, as_of, customer):
        if self.mode == "echo":
            return cohort.Undecided(echo(customer))
        if self.mode == "peek":
            return cohort.Undecided(peek())
        if self.mode == "raise":
            if self.boom in customer.tags:
                raise ValueError(f"customer {customer.index} is tagged boom")
            return True
        if self.mode == "not-a-bool":
            return customer.tags
        return self.methods.any(customer.auth_methods)


Condition = cohort.export(SdkChecks)
