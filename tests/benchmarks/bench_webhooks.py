"""Webhook verification throughput: signoff's Verifier next to the references, in one run.

Run it with `uv run python tests/benchmarks/bench_webhooks.py [--repeat 7] [--min-time 0.2]`.

* **v1** (HMAC-SHA256): `signoff.webhooks.Verifier.verify_signature` against
  `standardwebhooks.Webhook.verify(..., json_parse=False)` on the same signed delivery, so both
  check headers, timestamp and signature and neither parses the body.
* **v1a** (Ed25519): `Verifier.verify_signature` against a bare
  `cryptography` `Ed25519PublicKey.verify` of the same signed content, built once in advance:
  the floor, which shows what the header handling costs on top of the signature check.

Each figure is the best of `--repeat` timings of a loop sized (as `timeit` does) to last at least
`--min-time` seconds; ours and the reference are timed alternately so drift hits both alike.
The script exits 1 if our v1 is slower than the reference package, or our v1a takes more than
1.3 times as long as the bare verify.
"""

from __future__ import annotations

import argparse
import base64
import json
import platform
import sys
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version

from _report import Figure, record
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from standardwebhooks import Webhook

from signoff.webhooks import Verifier, generate_hmac_secret, generate_signing_key, sign

REPORTED = ("signoff", "cryptography", "standardwebhooks")
V1A_LIMIT = 1.3
"""Our v1a verify may take at most this many times as long as the bare Ed25519 verify."""


def callback_body() -> bytes:
    """A realistic callback body (~1.5 KB): a decided request with its decision."""
    request = {
        "id": "req_01JD3Z5X8K4V7N2M5P9R1T3W6Y",
        "status": "approved",
        "created_at": "2025-01-01T09:00:00Z",
        "action": {
            "name": "payments.release",
            "arguments": {"invoice": "INV-1042", "amount": 1250.5, "currency": "EUR"},
        },
        "business_object": {"type": "invoice", "id": "INV-1042", "attributes": {"vendor": "Acme"}},
        "summary": "Release the payment for invoice INV-1042",
        "context": {"reasoning": "matched PO-77 and the goods receipt " * 10},
        "agent": {"id": "agt_payables", "framework": "langgraph"},
        "correlation": {"thread_id": "th_1", "interrupt_id": "int_9"},
        "risk": "high",
        "route": {"role": "finance-approver"},
        "on_timeout": "reject",
        "approvals": {"mode": "single", "required": 1},
        "allowed": ["approve", "reject", "edit"],
        "comment_required": "on_reject",
        "decisions": [
            {
                "id": "dec_01JD3Z7A",
                "request_id": "req_01JD3Z5X8K4V7N2M5P9R1T3W6Y",
                "verdict": "approve",
                "decided_by": {"user": "bob@example.com", "role": "finance-approver"},
                "via": "web",
                "at": "2025-01-01T09:12:00Z",
            }
        ],
    }
    event = {
        "type": "request.decided",
        "id": "evt_01JD3Z6Q8K4V7N2M5P9R1T3W6Y",
        "timestamp": "2025-01-01T09:12:01Z",
        "data": {"request": request},
    }
    return json.dumps(event).encode()


def per_call(func: Callable[[], object], number: int) -> float:
    """Seconds per call, timing `number` calls in a row."""
    return timeit.Timer(func).timeit(number) / number


def loop_size(func: Callable[[], object], min_time: float) -> int:
    """How many calls make one timing last at least `min_time` seconds (like timeit's autorange)."""
    number = 1
    while True:
        if timeit.Timer(func).timeit(number) >= min_time:
            return number
        number *= 2


@dataclass
class Pair:
    scheme: str
    ours_name: str
    ours: Callable[[], object]
    ref_name: str
    ref: Callable[[], object]


def measure(pair: Pair, *, repeat: int, min_time: float) -> tuple[float, float]:
    """Seconds per call for ours and the reference, timed alternately, best of `repeat`."""
    sizes = (loop_size(pair.ours, min_time), loop_size(pair.ref, min_time))
    ours, ref = float("inf"), float("inf")
    for _ in range(repeat):
        ours = min(ours, per_call(pair.ours, sizes[0]))
        ref = min(ref, per_call(pair.ref, sizes[1]))
    return ours, ref


def build_pairs() -> list[Pair]:
    body = callback_body()
    msg_id = "evt_01JD3Z6Q8K4V7N2M5P9R1T3W6Y"
    # standardwebhooks checks the timestamp against the real clock: sign with now.
    timestamp = int(time.time())

    secret = generate_hmac_secret()
    v1_headers = sign(body, msg_id=msg_id, keys=[secret], timestamp=timestamp)
    ours_v1 = Verifier([secret])
    reference = Webhook(secret)

    pair = generate_signing_key()
    v1a_headers = sign(body, msg_id=msg_id, keys=[pair.secret], timestamp=timestamp)
    ours_v1a = Verifier([pair.public])
    seed = base64.b64decode(pair.secret.removeprefix("whsk_"))
    bare_key = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    content = f"{msg_id}.{timestamp}.".encode() + body
    signature = base64.b64decode(v1a_headers["webhook-signature"].split(",", 1)[1])

    # Every contender must accept the delivery before it is timed.
    assert ours_v1.verify_signature(body, v1_headers).id == msg_id
    assert reference.verify(body, v1_headers, json_parse=False) is None
    assert ours_v1a.verify_signature(body, v1a_headers).id == msg_id
    bare_key.verify(signature, content)

    return [
        Pair(
            "v1",
            "signoff Verifier.verify_signature",
            lambda: ours_v1.verify_signature(body, v1_headers),
            "standardwebhooks Webhook.verify",
            lambda: reference.verify(body, v1_headers, json_parse=False),
        ),
        Pair(
            "v1a",
            "signoff Verifier.verify_signature",
            lambda: ours_v1a.verify_signature(body, v1a_headers),
            "bare Ed25519PublicKey.verify",
            lambda: bare_key.verify(signature, content),
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Webhook verification throughput.")
    parser.add_argument("--repeat", type=int, default=7, help="timings per contender (best wins)")
    parser.add_argument("--min-time", type=float, default=0.2, help="seconds per timing, at least")
    args = parser.parse_args(argv)

    versions = ", ".join(f"{name} {version(name)}" for name in REPORTED)
    print(f"python {platform.python_version()} on {platform.machine()}; {versions}")
    print(f"best of {args.repeat} timings of >= {args.min_time} s each\n")
    header = f"{'scheme':<6} {'implementation':<36} {'ops/s':>10} {'us/op':>8}"
    print(header)
    print("-" * len(header))

    failures: list[str] = []
    figures: list[Figure] = []
    for pair in build_pairs():
        ours, ref = measure(pair, repeat=args.repeat, min_time=args.min_time)
        for name, seconds in ((pair.ours_name, ours), (pair.ref_name, ref)):
            print(f"{pair.scheme:<6} {name:<36} {1 / seconds:>10,.0f} {seconds * 1e6:>8.2f}")
        if pair.scheme == "v1":
            speedup = ref / ours
            verdict = "ok" if speedup >= 1.0 else "FAIL"
            print(f"{'':<6} -> signoff is {speedup:.2f}x the reference's speed (need >= 1.00): "
                  f"{verdict}\n")  # fmt: skip
            if speedup < 1.0:
                failures.append(f"v1: signoff is slower than standardwebhooks ({speedup:.2f}x)")
        else:
            cost = ours / ref
            verdict = "ok" if cost <= V1A_LIMIT else "FAIL"
            print(f"{'':<6} -> signoff takes {cost:.2f}x the bare verify's time "
                  f"(limit {V1A_LIMIT:.2f}x): {verdict}\n")  # fmt: skip
            if cost > V1A_LIMIT:
                failures.append(f"v1a: signoff takes {cost:.2f}x the bare verify's time")
        limit = 1.0 if pair.scheme == "v1" else V1A_LIMIT
        figures.append(
            Figure(
                figure=f"{pair.scheme} verify: {pair.ours_name}, time per call",
                value=ours * 1e6,
                unit="µs/op",
                target=f"time ≤ {limit:.2f}x theirs",
                passed=ours / ref <= limit,
                compared_with=pair.ref_name,
                compared_value=ref * 1e6,
                ratio=ours / ref,
            )
        )

    record(figures)

    for failure in failures:
        print(f"FAIL {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
