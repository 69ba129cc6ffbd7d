"""The demo's seeded users: who may log in, and which projects each may see."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["USERS", "User"]


@dataclass(frozen=True)
class User:
    username: str
    password: str
    projects: tuple[str, ...]
    roles: tuple[str, ...] = ("member",)


USERS = {
    user.username: user
    for user in (
        User("alice", "alice-password", ("p-1",)),
        User("bob", "bob-password", ("p-2",)),
    )
}
