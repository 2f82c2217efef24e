"""Ledger helpers shared by the graph nodes."""

import requests
from sqlalchemy import create_engine, text

engine = create_engine("postgresql://ledger")


def write_off(invoice_id: str) -> None:
    requests.post(f"https://erp.example.com/api/invoices/{invoice_id}/write-off", timeout=10)


def close_books(period: str) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE periods SET closed = true WHERE name = :p"), {"p": period})


def purge_paid(days: int) -> int:
    with engine.begin() as conn:
        sql = "DELETE FROM invoices WHERE status = 'paid' AND paid_at < now() - :d * interval '1 day'"
        return conn.execute(text(sql), {"d": days}).rowcount


def outstanding() -> list[str]:
    with engine.connect() as conn:
        return [r.id for r in conn.execute(text("SELECT id FROM invoices WHERE status = 'open'"))]
