"""The identity provider's group API."""

import requests

OKTA = "https://acme.okta.example.com/api/v1"


def add_to_group(user_id: str, group_id: str) -> None:
    requests.put(f"{OKTA}/groups/{group_id}/users/{user_id}", timeout=10)


def remove_from_group(user_id: str, group_id: str) -> None:
    requests.delete(f"{OKTA}/groups/{group_id}/users/{user_id}", timeout=10)


def groups_of(user_id: str) -> list[str]:
    return [g["id"] for g in requests.get(f"{OKTA}/users/{user_id}/groups", timeout=10).json()]
