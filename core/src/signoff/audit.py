"""Offline verification of a signoff audit log: signed checkpoints, exports, evidence packets.

Nothing here talks to a server or a database. An auditor needs the export directory (or one
evidence packet) and the log's public key, the verifier key line from `GET /v1/keys` or the
server's published checkpoint directory, and `pip install signoff`.

Formats (docs/audit.md has the full description):

* **Entry**: the RFC 8785 canonical JSON of `{actor, at, data, request_id, seq, type}`; its leaf
  hash is SHA-256(0x00 || entry bytes) and `seq` is its leaf index (RFC 6962).
* **Checkpoint**: a C2SP tlog-checkpoint (`origin`, tree size, base64 root hash, one per line)
  in a C2SP signed note with an Ed25519 signature line (`— <name> <base64(key id || sig)>`).
  Keys use the signed-note encodings: `<name>+<hex key id>+<base64(0x01 || public key)>` for
  the verifier key, `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>` for the signer.
* **Export** directory: `entries.jsonl` (line i = entry i, byte for byte what was hashed),
  `leaf_hashes.txt` (line i = the leaf hash the server recorded: only used to point at the
  changed entry, never trusted), `checkpoints.jsonl` (every signed checkpoint with the RFC 6962
  consistency proof from the one before), `verifier.key`, `manifest.json`.
* **Evidence packet**: one request's history with each event's inclusion proof against one
  signed checkpoint (see `verify_evidence`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from signoff.errors import SignoffError
from signoff.merkle import (
    EMPTY_ROOT,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)

__all__ = [
    "EVIDENCE_FORMAT",
    "EXPORT_FORMAT",
    "Checkpoint",
    "EvidenceReport",
    "ExportReport",
    "NoteError",
    "SignerKey",
    "VerifierKey",
    "i_json",
    "open_note",
    "sign_note",
    "verify_evidence",
    "verify_export",
]

EXPORT_FORMAT = "signoff-audit-export/1"
EVIDENCE_FORMAT = "signoff-evidence/1"

ENTRIES_FILE = "entries.jsonl"
LEAF_HASHES_FILE = "leaf_hashes.txt"
CHECKPOINTS_FILE = "checkpoints.jsonl"
VERIFIER_KEY_FILE = "verifier.key"
MANIFEST_FILE = "manifest.json"

_ALG_ED25519 = 0x01
_SIG_PREFIX = "\u2014 "  # an em dash and a space start every signature line
_MAX_SIGNATURES = 100


class NoteError(SignoffError, ValueError):
    """A key, signed note or checkpoint that is malformed or does not verify."""


_MAX_SAFE_INTEGER = 2**53 - 1


def i_json(value: Any) -> Any:
    """`value` within RFC 8785's domain (I-JSON), as the server records it in an entry:
    integers beyond ±(2**53 - 1) and non-finite floats become decimal strings, unpaired
    surrogates become U+FFFD. Everything else is returned as it is."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if abs(value) <= _MAX_SAFE_INTEGER else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, Mapping):
        items = cast(Mapping[Any, Any], value).items()
        return {i_json(str(k)): i_json(v) for k, v in items}
    if isinstance(value, list | tuple):
        return [i_json(v) for v in cast(Iterable[Any], value)]
    raise TypeError(f"{type(value).__name__} is not JSON")


# --- keys and signed notes (C2SP signed-note) ------------------------------------------------


def _check_name(name: str) -> str:
    if not name or "+" in name or any(unicodedata.category(c)[0] in "ZC" for c in name):
        raise NoteError(f"key name {name!r} must be non-empty, without spaces or '+'")
    return name


def _key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([_ALG_ED25519]) + public).digest()[:4]


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NoteError(f"{what} is not valid base64") from exc


@dataclass(frozen=True, slots=True)
class VerifierKey:
    """A public key that checks signatures on notes: `<name>+<key id hex>+<base64 key>`."""

    name: str
    key_id: bytes
    public: bytes

    @classmethod
    def parse(cls, vkey: str) -> VerifierKey:
        """Read a verifier key line."""
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3:
            raise NoteError("a verifier key reads <name>+<key id>+<base64 key>")
        name, hex_id, b64 = parts
        _check_name(name)
        raw = _b64decode(b64, "the verifier key")
        if len(raw) != 33 or raw[0] != _ALG_ED25519:
            raise NoteError("only Ed25519 verifier keys (type 0x01, 32 bytes) are supported")
        public = raw[1:]
        try:
            key_id = bytes.fromhex(hex_id)
        except ValueError as exc:
            raise NoteError("the verifier key id is not hex") from exc
        if len(key_id) != 4 or key_id != _key_id(name, public):
            raise NoteError("the verifier key id does not match its name and key")
        return cls(name, key_id, public)

    def __str__(self) -> str:
        encoded = base64.b64encode(bytes([_ALG_ED25519]) + self.public).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether `signature` is this key's Ed25519 signature of `message`."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True, slots=True)
class SignerKey:
    """A private key that signs notes: `PRIVATE+KEY+<name>+<key id hex>+<base64 seed>`."""

    name: str
    seed: bytes

    @classmethod
    def generate(cls, name: str) -> SignerKey:
        """A fresh Ed25519 key for the log called `name`."""
        seed = Ed25519PrivateKey.generate().private_bytes_raw()
        return cls(_check_name(name), seed)

    @classmethod
    def parse(cls, skey: str) -> SignerKey:
        """Read a signer key line."""
        parts = skey.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteError("a signer key reads PRIVATE+KEY+<name>+<key id>+<base64 seed>")
        _, _, name, hex_id, b64 = parts
        _check_name(name)
        raw = _b64decode(b64, "the signer key")
        if len(raw) != 33 or raw[0] != _ALG_ED25519:
            raise NoteError("only Ed25519 signer keys (type 0x01, 32-byte seed) are supported")
        key = cls(name, raw[1:])
        if hex_id != key.verifier().key_id.hex():
            raise NoteError("the signer key id does not match its name and key")
        return key

    def public(self) -> bytes:
        """The raw 32-byte public key."""
        return Ed25519PrivateKey.from_private_bytes(self.seed).public_key().public_bytes_raw()

    def verifier(self) -> VerifierKey:
        """The matching verifier key (publish this)."""
        public = self.public()
        return VerifierKey(self.name, _key_id(self.name, public), public)

    def __str__(self) -> str:
        encoded = base64.b64encode(bytes([_ALG_ED25519]) + self.seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier().key_id.hex()}+{encoded}"

    def __repr__(self) -> str:
        return f"SignerKey(name={self.name!r}, seed=<hidden>)"

    def sign(self, message: bytes) -> bytes:
        """The Ed25519 signature of `message`."""
        return Ed25519PrivateKey.from_private_bytes(self.seed).sign(message)


def sign_note(text: str, signer: SignerKey) -> str:
    """A signed note: `text` (non-empty, ending in a newline), a blank line, one signature."""
    if not text.endswith("\n") or "\n\n" in text or text.startswith("\n"):
        raise NoteError("note text must be non-empty lines, each ending in a newline")
    signature = signer.sign(text.encode())
    blob = base64.b64encode(signer.verifier().key_id + signature).decode()
    return f"{text}\n{_SIG_PREFIX}{signer.name} {blob}\n"


def open_note(note: str, verifiers: Iterable[VerifierKey]) -> str:
    """The text of a signed note, if a signature by one of `verifiers` checks; else NoteError.

    Signatures by unknown keys are ignored (as C2SP allows); a signature that claims a known
    key but does not verify is an error.
    """
    known = {(v.name, v.key_id): v for v in verifiers}
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise NoteError("malformed note: no blank line before the signatures")
    text, sigs = note[: split + 1], note[split + 2 :]
    lines = sigs[:-1].split("\n")
    if not lines or len(lines) > _MAX_SIGNATURES:
        raise NoteError("malformed note: no signature lines")
    verified = False
    for line in lines:
        if not line.startswith(_SIG_PREFIX):
            raise NoteError("malformed note: a signature line must start with an em dash")
        name, _, blob = line[len(_SIG_PREFIX) :].partition(" ")
        raw = _b64decode(blob, "a signature")
        if not name or " " in blob or len(raw) < 5:
            raise NoteError("malformed signature line")
        verifier = known.get((name, raw[:4]))
        if verifier is None:
            continue
        if not verifier.verify(text.encode(), raw[4:]):
            raise NoteError(f"the signature by {name} does not verify")
        verified = True
    if not verified:
        raise NoteError("no signature by a trusted key (the note is not signed by this log)")
    return text


# --- checkpoints (C2SP tlog-checkpoint) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A log's signed statement: its origin, its size and the root hash of that tree."""

    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        """The checkpoint body (three lines, no extension lines)."""
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Read a checkpoint body (extension lines are allowed and ignored)."""
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise NoteError("a checkpoint has an origin, a size and a root hash line")
        origin, size, root = lines[0], lines[1], lines[2]
        if not origin:
            raise NoteError("the checkpoint origin is empty")
        if not size.isascii() or not size.isdigit() or (size != "0" and size.startswith("0")):
            raise NoteError(f"the checkpoint size {size!r} is not a decimal number")
        raw = _b64decode(root, "the checkpoint root hash")
        if len(raw) != 32:
            raise NoteError("the checkpoint root hash is not 32 bytes")
        return cls(origin, int(size), raw)

    @classmethod
    def open(cls, note: str, verifiers: Iterable[VerifierKey]) -> Checkpoint:
        """Verify a signed checkpoint note and read it; its origin must be the key's name."""
        keys = list(verifiers)
        checkpoint = cls.parse(open_note(note, keys))
        if checkpoint.origin not in {k.name for k in keys}:
            raise NoteError(f"the checkpoint origin {checkpoint.origin!r} is not the key's name")
        return checkpoint


# --- verifying an export -----------------------------------------------------------------------


@dataclass
class ExportReport:
    """What `verify_export` found. `ok` only if every entry is proven by a signed checkpoint."""

    entries: int = 0
    checkpoints: int = 0
    verified_size: int = 0
    origin: str | None = None
    first_bad_seq: int | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list[str])

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return self.error is None


@dataclass(frozen=True, slots=True)
class _Failure:
    first_bad_seq: int
    message: str
    specific: bool = True  # pinpoints an entry (vs. "not covered" / range failures)


def _read_lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        yield from f


def _load_checkpoints(
    directory: Path, keys: Sequence[VerifierKey]
) -> tuple[list[Checkpoint], _Failure | None, int]:
    """The export's checkpoints up to the first that fails, and that failure."""
    path = directory / CHECKPOINTS_FILE
    if not path.exists():
        return [], _Failure(0, f"{CHECKPOINTS_FILE} is missing: nothing vouches for the entries"), 0
    valid: list[Checkpoint] = []
    count = 0
    for number, raw in enumerate(_read_lines(path), start=1):
        if not raw.strip():
            continue
        count += 1
        before = valid[-1] if valid else None
        first_uncovered = before.size if before else 0
        where = f"checkpoint {number} in {CHECKPOINTS_FILE}"
        try:
            record = json.loads(raw)
            checkpoint = Checkpoint.open(str(record["note"]), keys)
        except (ValueError, KeyError, TypeError) as exc:
            reason = exc if isinstance(exc, NoteError) else "not a checkpoint record"
            return (
                valid,
                _Failure(first_uncovered, f"{where} does not verify: {reason}", False),
                count,
            )
        if before is not None and checkpoint.origin != before.origin:
            return valid, _Failure(first_uncovered, f"{where} is for another log", False), count
        if before is not None and checkpoint.size <= before.size:
            return (
                valid,
                _Failure(
                    first_uncovered,
                    f"{where} (size {checkpoint.size}) does not grow the log",
                    False,
                ),
                count,
            )
        consistency = record.get("consistency")
        if before is not None and consistency is not None:
            try:
                proof = [bytes.fromhex(h) for h in consistency["proof"]]
                proven = int(consistency["from"]) == before.size and verify_consistency(
                    before.size, checkpoint.size, before.root, checkpoint.root, proof
                )
            except (ValueError, KeyError, TypeError):
                proven = False
            if not proven:
                return (
                    valid,
                    _Failure(
                        first_uncovered,
                        f"{where} (size {checkpoint.size}) is not consistent with the "
                        f"checkpoint of size {before.size}: the log was rewritten between them",
                        False,
                    ),
                    count,
                )
        valid.append(checkpoint)
    return valid, None, count


def _seq_of(line: bytes) -> int | None:
    # In canonical form the keys are sorted, so `seq` is the last key but `type`, whose value is
    # a string: the last `,"seq":` in the line is the top-level one (inside strings a quote is
    # always escaped). A line that is not canonical fails its leaf hash anyway.
    at = line.rfind(b',"seq":')
    if at < 0:
        return None
    end = line.find(b",", at + 7)
    digits = line[at + 7 : end if end >= 0 else None]
    if not digits.isdigit() or (len(digits) > 1 and digits.startswith(b"0")):
        return None
    return int(digits)


def _verify_entries(
    directory: Path, checkpoints: list[Checkpoint], report: ExportReport
) -> _Failure | None:
    """Recompute every leaf and the root at every checkpoint size, in one pass."""
    entries_path = directory / ENTRIES_FILE
    if not entries_path.exists():
        return _Failure(0, f"{ENTRIES_FILE} is missing")
    hints_path = directory / LEAF_HASHES_FILE
    hints: Iterator[bytes] | None = _read_lines(hints_path) if hints_path.exists() else None
    sha256 = hashlib.sha256
    stack: list[bytes] = []  # the frontier, largest subtree first
    hint_stack: list[bytes] | None = None  # a second frontier from the first differing hint
    first_hint_mismatch: int | None = None
    targets = iter(checkpoints)
    target = next(targets, None)
    verified = 0
    count = 0
    for index, raw in enumerate(_read_lines(entries_path)):
        count = index + 1
        line = raw[:-1] if raw.endswith(b"\n") else raw
        seq = _seq_of(line)
        if seq != index:
            found = "no readable seq" if seq is None else f"seq {seq}"
            return _Failure(
                index,
                f"line {index + 1} of {ENTRIES_FILE} holds {found}, not seq {index}: an entry "
                "was changed, removed, inserted or reordered here",
            )
        leaf = sha256(b"\x00" + line).digest()
        if hints is not None:
            hint_line = next(hints, b"").strip()
            try:
                hint = bytes.fromhex(hint_line.decode())
            except (ValueError, UnicodeDecodeError):
                hint = b""
            if hint != leaf and hint_stack is None:
                first_hint_mismatch = index
                hint_stack = list(stack)
            if hint_stack is not None:
                _push(hint_stack, index, hint if len(hint) == 32 else leaf)
        _push(stack, index, leaf)
        while target is not None and target.size == count:
            root = _root(stack)
            if root == target.root:
                if first_hint_mismatch is not None:
                    report.warnings.append(
                        f"{LEAF_HASHES_FILE} differs from the entries at seq "
                        f"{first_hint_mismatch}, but the entries match the signed checkpoint"
                    )
                first_hint_mismatch, hint_stack = None, None
                verified = count
                report.verified_size = verified
            elif hint_stack is not None and _root(hint_stack) == target.root:
                assert first_hint_mismatch is not None
                return _Failure(
                    first_hint_mismatch,
                    f"entry {first_hint_mismatch} was changed: its content does not hash to the "
                    f"leaf that the signed checkpoint of size {target.size} commits to",
                )
            else:
                return _Failure(
                    verified,
                    f"entries {verified}..{target.size - 1} do not match the signed checkpoint "
                    f"of size {target.size}; the first entry that does not verify is {verified} "
                    "(the leaf hash list was altered as well, so the changed entry cannot be "
                    "pinpointed more closely)",
                    False,
                )
            target = next(targets, None)
    report.entries = count
    if target is not None:
        return _Failure(
            count,
            f"the signed checkpoint of size {target.size} covers entries up to "
            f"{target.size - 1}, but the export ends after {count} entries: entries from "
            f"{count} on are missing",
        )
    if count > verified:
        return _Failure(
            verified,
            f"entries {verified}..{count - 1} are not covered by any valid signed checkpoint",
            False,
        )
    return None


def _push(stack: list[bytes], index: int, leaf: bytes) -> None:
    node = leaf
    while index & 1:
        node = node_hash(stack.pop(), node)
        index >>= 1
    stack.append(node)


def _root(stack: list[bytes]) -> bytes:
    if not stack:
        return EMPTY_ROOT
    root = stack[-1]
    for left in reversed(stack[:-1]):
        root = node_hash(left, root)
    return root


def verify_export(
    directory: str | Path,
    keys: Sequence[VerifierKey],
    *,
    trusted_checkpoints: Sequence[str] = (),
) -> ExportReport:
    """Verify an export directory against the log's public key(s).

    Checks every checkpoint's signature and its consistency proof from the one before, then
    recomputes every leaf and the root at every checkpoint size from `entries.jsonl`. The first
    entry that does not verify is `first_bad_seq`: the changed, missing or misplaced entry when
    the export lets it be pinpointed, otherwise the first entry no valid checkpoint proves.

    `trusted_checkpoints` are signed notes obtained elsewhere (a published checkpoint, a
    witness): the export must contain their entries and agree with them, which catches an
    export that was cut short together with its later checkpoints.
    """
    directory = Path(directory)
    report = ExportReport()
    if not keys:
        report.error = "no verifier key given"
        report.first_bad_seq = 0
        return report
    checkpoints, cp_failure, report.checkpoints = _load_checkpoints(directory, keys)
    for note in trusted_checkpoints:
        try:
            trusted = Checkpoint.open(note, keys)
        except NoteError as exc:
            report.error = f"the trusted checkpoint does not verify: {exc}"
            report.first_bad_seq = 0
            return report
        same = [c for c in checkpoints if c.size == trusted.size]
        if same and same[0].root != trusted.root:
            report.error = (
                f"the export's checkpoint of size {trusted.size} differs from the trusted one: "
                "two different logs were signed with this key"
            )
            report.first_bad_seq = 0
            return report
        if not same:
            checkpoints.append(trusted)
    checkpoints.sort(key=lambda c: c.size)
    if checkpoints:
        report.origin = checkpoints[0].origin
    entry_failure = _verify_entries(directory, checkpoints, report)
    failure = entry_failure
    if cp_failure is not None and (
        failure is None
        or cp_failure.first_bad_seq < failure.first_bad_seq
        or (cp_failure.first_bad_seq == failure.first_bad_seq and not failure.specific)
    ):
        failure = cp_failure
    if failure is not None:
        report.error = failure.message
        report.first_bad_seq = failure.first_bad_seq
    manifest = directory / MANIFEST_FILE
    if manifest.exists():
        try:
            size = json.loads(manifest.read_bytes()).get("size")
        except (ValueError, AttributeError):
            size = None
        if size != report.entries:
            report.warnings.append(f"{MANIFEST_FILE} says {size} entries, the export has others")
    return report


# --- verifying an evidence packet --------------------------------------------------------------


@dataclass
class EvidenceReport:
    """What `verify_evidence` found; `events` are the verified entries, parsed."""

    request_id: str | None = None
    checkpoint: Checkpoint | None = None
    events: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    error: str | None = None
    bad_seq: int | None = None

    @property
    def ok(self) -> bool:
        """True when every event is proven and the packet agrees with them."""
        return self.error is None


def _same_json(a: Any, b: Any) -> bool:
    """JSON equality that keeps types apart (Python says True == 1 == 1.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        x, y = cast(dict[str, Any], a), cast(dict[str, Any], b)
        return x.keys() == y.keys() and all(_same_json(x[k], y[k]) for k in x)
    if isinstance(a, list):
        x, y = cast(list[Any], a), cast(list[Any], b)
        return len(x) == len(y) and all(_same_json(i, j) for i, j in zip(x, y, strict=True))
    return bool(a == b)


class _Refused(Exception):
    def __init__(self, message: str, seq: int | None = None) -> None:
        super().__init__(message)
        self.seq = seq


def _obj(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one (malformed parts then fail checks)."""
    return cast(dict[str, Any], value) if isinstance(value, dict) else {}


def _items(value: Any) -> list[Any]:
    """`value` if it is a JSON array, else an empty one."""
    return cast(list[Any], value) if isinstance(value, list) else []


def _proven_events(
    packet: Mapping[str, Any], checkpoint: Checkpoint, request_id: str
) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    last = -1
    for raw in _items(packet.get("events")):
        item = _obj(raw)
        seq = item.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise _Refused("an event has no seq")
        entry = item.get("entry")
        if not isinstance(entry, str):
            raise _Refused(f"event {seq} carries no canonical entry", seq)
        leaf = leaf_hash(entry.encode())
        if item.get("leaf_hash") not in (None, leaf.hex()):
            raise _Refused(f"event {seq}: its leaf_hash is not the hash of its entry", seq)
        try:
            proof = [bytes.fromhex(str(h)) for h in _items(item.get("inclusion_proof"))]
        except ValueError:
            raise _Refused(f"event {seq}: malformed inclusion proof", seq) from None
        if not verify_inclusion(leaf, seq, checkpoint.size, proof, checkpoint.root):
            raise _Refused(
                f"event {seq} is not in the log: its inclusion proof does not lead to the "
                f"signed root of size {checkpoint.size}",
                seq,
            )
        parsed = _obj(json.loads(entry))
        if parsed.get("seq") != seq or seq <= last:
            raise _Refused(f"event {seq}: the entry's seq is not its position", seq)
        if parsed.get("request_id") != request_id:
            raise _Refused(f"event {seq} belongs to another request", seq)
        shown = item.get("event")
        if shown is not None and not _same_json(
            {k: v for k, v in _obj(shown).items() if k != "leaf_hash"}, parsed
        ):
            raise _Refused(f"event {seq}: the readable copy differs from the signed entry", seq)
        last = seq
        events.append(parsed)
    if not events:
        raise _Refused("the packet proves no events")
    return events


def _cross_check(packet: Mapping[str, Any], events: list[dict[str, Any]]) -> None:
    """The packet's summary fields must say what the proven events say."""
    by_type: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_type.setdefault(str(event.get("type")), []).append(event)

    def data(event: dict[str, Any]) -> dict[str, Any]:
        return _obj(event.get("data"))

    request = _obj(packet.get("request"))
    created = by_type.get("request.created", [])
    if not created:
        raise _Refused("the packet lacks the request.created event")
    if not _same_json(i_json(request.get("action")), data(created[0]).get("action")):
        raise _Refused("the request's action differs from the logged one", created[0]["seq"])
    routed = by_type.get("request.routed", [])
    if routed:
        logged = data(routed[0])
        if not _same_json(i_json(packet.get("assignees_at_routing")), logged.get("assignees")):
            raise _Refused("the on-shift assignees differ from the logged ones", routed[0]["seq"])
        if not _same_json(i_json(packet.get("policy")), logged.get("policy")):
            raise _Refused("the matched policy differs from the logged one", routed[0]["seq"])
    deciding = [
        e
        for t in ("request.decided", "request.approval_recorded", "request.expired")
        for e in by_type.get(t, [])
    ]
    for raw in _items(packet.get("decisions")):
        decision = _obj(raw)
        signer = _obj(decision.get("decided_by")).get("user")
        automatic = decision.get("via") in ("policy", "timeout")
        if not any(
            data(e).get("verdict") == decision.get("verdict")
            and (automatic or e.get("actor") == f"user:{signer}")
            for e in deciding
        ):
            raise _Refused(f"decision {decision.get('id')} by {signer} is not in the log")
    outcome = packet.get("outcome")
    if outcome is not None:
        reported = by_type.get("request.outcome_reported", [])
        if not reported or data(reported[-1]).get("status") != _obj(outcome).get("status"):
            raise _Refused("the reported outcome is not the logged one")
    for raw in _items(packet.get("callbacks")):
        callback = _obj(raw)
        if not any(
            e.get("seq") == callback.get("seq") and e.get("type") == callback.get("type")
            for e in events
        ):
            raise _Refused(f"callback event {callback.get('seq')} is not among the proven events")


def verify_evidence(packet: Mapping[str, Any], keys: Sequence[VerifierKey]) -> EvidenceReport:
    """Verify one request's evidence packet with nothing but the log's public key(s).

    The checkpoint's signature, each event's inclusion proof against it, each event's seq and
    request id, and that the packet's request, policy, on-shift assignees, decisions, callbacks
    and outcome agree with the proven events.
    """
    report = EvidenceReport()
    request_id = _obj(packet.get("request")).get("id")
    report.request_id = request_id if isinstance(request_id, str) else None
    if packet.get("format") != EVIDENCE_FORMAT:
        report.error = f"not a signoff evidence packet ({EVIDENCE_FORMAT})"
        return report
    if report.request_id is None:
        report.error = "the packet names no request"
        return report
    try:
        checkpoint = Checkpoint.open(str(_obj(packet.get("checkpoint")).get("note")), keys)
    except NoteError as exc:
        report.error = f"the packet's checkpoint does not verify: {exc}"
        return report
    report.checkpoint = checkpoint
    try:
        report.events = _proven_events(packet, checkpoint, report.request_id)
        _cross_check(packet, report.events)
    except _Refused as exc:
        report.error = str(exc)
        report.bad_seq = exc.seq
    return report
