"""Telling reviewers about requests, and letting them decide from where they are told.

- `config`: `SmtpSettings`, `SlackSettings` (part of `Settings`) and their `SIGNOFF_*` variables.
- `outbox`: one row per message to send, written in the transaction that caused it.
- `service`: `Notifications`, the one notifier the server uses: it enqueues, and a small worker
  pool delivers with retries; every message sent or given up on is a `notification.sent` /
  `notification.failed` timeline event.
- `mail`: SMTP messages with signed, expiring, single-use decision links, and the confirmation
  page those links land on.
- `slack`: Block Kit messages with Approve/Reject buttons, and the interactivity endpoint.

This package's `__init__` imports nothing, so `signoff_server.settings` can import `config`.
"""
