"""C2SP signed notes and checkpoints, checked against the reference implementation's vectors."""

from __future__ import annotations

import base64

import pytest

from signoff.audit import (
    Checkpoint,
    NoteError,
    SignerKey,
    VerifierKey,
    i_json,
    open_note,
    sign_note,
)

# golang.org/x/mod/sumdb/note's documented example (Ed25519 is deterministic, so signing the same
# text with the same key must give exactly this note).
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZ"
    "SNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
# The C2SP signed-note specification's example.
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfX"
    "ppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)


def test_reference_key_encodings_round_trip() -> None:
    signer = SignerKey.parse(GO_SKEY)
    assert str(signer) == GO_SKEY
    assert str(signer.verifier()) == GO_VKEY
    assert str(VerifierKey.parse(GO_VKEY)) == GO_VKEY
    assert "AYEK" not in repr(signer)  # the seed never shows in a repr


def test_signing_reproduces_the_reference_note() -> None:
    assert sign_note(GO_TEXT, SignerKey.parse(GO_SKEY)) == GO_NOTE


def test_reference_notes_open() -> None:
    assert open_note(GO_NOTE, [VerifierKey.parse(GO_VKEY)]) == GO_TEXT
    assert open_note(SPEC_NOTE, [VerifierKey.parse(SPEC_VKEY)]) == "This is an example message.\n"


def test_a_changed_note_or_signature_is_refused() -> None:
    key = [VerifierKey.parse(GO_VKEY)]
    with pytest.raises(NoteError, match="does not verify"):
        open_note(GO_NOTE.replace("cryptography", "cryptographY"), key)
    blob = GO_NOTE.rsplit(" ", 1)[1].strip()
    raw = bytearray(base64.b64decode(blob))
    raw[10] ^= 1
    forged = GO_NOTE.replace(blob, base64.b64encode(bytes(raw)).decode())
    with pytest.raises(NoteError, match="does not verify"):
        open_note(forged, key)
    # Signed by someone else entirely: no trusted signature.
    other = SignerKey.generate("PeterNeumann")
    with pytest.raises(NoteError, match="no signature by a trusted key"):
        open_note(sign_note(GO_TEXT, other), key)


@pytest.mark.parametrize(
    "vkey",
    [
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong key id
        "PeterNeumann+c74f20a3+AhpcsQcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong type
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # space in name
        "PeterNeumann+c74f20a3",
    ],
)
def test_malformed_verifier_keys_are_refused(vkey: str) -> None:
    with pytest.raises(NoteError):
        VerifierKey.parse(vkey)


def test_checkpoint_round_trip_and_origin_binding() -> None:
    signer = SignerKey.generate("audit.example.com/signoff")
    checkpoint = Checkpoint("audit.example.com/signoff", 1042, bytes(range(32)))
    assert checkpoint.text() == (
        "audit.example.com/signoff\n1042\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
    )
    note = sign_note(checkpoint.text(), signer)
    assert Checkpoint.open(note, [signer.verifier()]) == checkpoint
    # A checkpoint for another origin, even under this key, is not this log's.
    stray = sign_note(Checkpoint("other.example/log", 1, bytes(32)).text(), signer)
    with pytest.raises(NoteError, match="origin"):
        Checkpoint.open(stray, [signer.verifier()])


@pytest.mark.parametrize(
    "body",
    ["o\n01\nAAAA\n", "o\n-1\n" + "A" * 44 + "\n", "o\n5\nAAAA\n", "\n5\n" + "A" * 43 + "=\n"],
)
def test_malformed_checkpoints_are_refused(body: str) -> None:
    with pytest.raises(NoteError):
        Checkpoint.parse(body)


def test_i_json_records_values_outside_rfc8785_as_strings() -> None:
    assert i_json({"n": 2**60, "ok": 2**53 - 1, "f": float("nan"), "s": "\ud800x", "b": True}) == {
        "n": "1152921504606846976",
        "ok": 2**53 - 1,
        "f": "nan",
        "s": "\ufffdx",
        "b": True,
    }
