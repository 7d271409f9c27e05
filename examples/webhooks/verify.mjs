// Verify a Cohort webhook delivery (Node.js 18 or later, no packages).
//
//     verify(secret, header, body) -> nothing, or throws
//
// `header` is the request's `Cohort-Signature` (`t=<unix seconds>,v1=<hex>[,v1=<hex>]`),
// `body` the raw request body as a Buffer (before any JSON parsing: with Express,
// `express.raw({ type: "application/json" })`). The signature is HMAC-SHA256 with the
// webhook's secret over `<t>.<body>`; while a rotated secret's overlap lasts a delivery
// carries two `v1` values, and one matching is enough. A delivery older (or newer) than
// `tolerance` seconds is refused, so that a captured request cannot be replayed later.
//
// From a shell: `node verify.mjs < body.json`, with COHORT_SECRET and COHORT_SIGNATURE
// set; exits 0 if the delivery is genuine, 1 if not.

import { createHmac, timingSafeEqual } from "node:crypto";

export const TOLERANCE = 300;

export function verify(secret, header, body, tolerance = TOLERANCE, now = Date.now() / 1000) {
  let t = null;
  const macs = [];
  for (const part of header.split(",")) {
    const [key, value = ""] = part.trim().split("=", 2);
    if (key === "t") t = value;
    else if (key === "v1") macs.push(value);
  }
  if (t === null || !/^\d+$/.test(t) || macs.length === 0) {
    throw new Error("not a Cohort-Signature header");
  }
  if (Math.abs(now - Number(t)) > tolerance) {
    throw new Error(`signed at ${t}, more than ${tolerance} s from now`);
  }
  const expected = createHmac("sha256", secret).update(`${t}.`).update(body).digest();
  // Compared in constant time, each of them.
  const genuine = macs.some((mac) => {
    const given = Buffer.from(mac, "hex");
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
  if (!genuine) throw new Error("no signature made with this secret");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  try {
    verify(process.env.COHORT_SECRET, process.env.COHORT_SIGNATURE, Buffer.concat(chunks));
    console.log("genuine");
  } catch (e) {
    console.error(`refused: ${e.message}`);
    process.exit(1);
  }
}
