"""Verify a Cohort webhook delivery (Python 3, standard library only).

    verify(secret, header, body) -> None, or raises InvalidSignature

`header` is the request's `Cohort-Signature` (`t=<unix seconds>,v1=<hex>[,v1=<hex>]`),
`body` the raw request body as bytes (before any JSON parsing). The signature is
HMAC-SHA256 with the webhook's secret over `<t>.<body>`; while a rotated secret's
overlap lasts a delivery carries two `v1` values, and one matching is enough. A
delivery older (or newer) than `tolerance` seconds is refused, so that a captured
request cannot be replayed later.

From a shell: `python3 verify.py < body.json`, with COHORT_SECRET and
COHORT_SIGNATURE set; exits 0 if the delivery is genuine, 1 if not.
"""

import hashlib
import hmac
import os
import sys
import time

TOLERANCE = 300


class InvalidSignature(Exception):
    pass


def verify(secret, header, body, tolerance=TOLERANCE, now=None):
    t, macs = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            t = value
        elif key == "v1":
            macs.append(value)
    if t is None or not t.isdigit() or not macs:
        raise InvalidSignature("not a Cohort-Signature header")
    now = time.time() if now is None else now
    if abs(now - int(t)) > tolerance:
        raise InvalidSignature(f"signed at {t}, more than {tolerance} s from now")
    expected = hmac.new(secret.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
    # Compared in constant time, each of them.
    if not any(hmac.compare_digest(expected, mac) for mac in macs):
        raise InvalidSignature("no signature made with this secret")


if __name__ == "__main__":
    try:
        verify(os.environ["COHORT_SECRET"], os.environ["COHORT_SIGNATURE"], sys.stdin.buffer.read())
    except InvalidSignature as e:
        print(f"refused: {e}", file=sys.stderr)
        sys.exit(1)
    print("genuine")
