"""Demo Assignment service: who works on which ticket, with a switch to make it fail or hang."""

from __future__ import annotations

import threading

from demo.web import JsonRequest, Reply, Router

__all__ = ["MODES", "AssignmentService"]

MODES = ("ok", "fail", "hang")

SEED = {
    "p-1": [{"ticketId": "t-1", "assignee": "alice"}, {"ticketId": "t-2", "assignee": "alice"}],
    "p-2": [{"ticketId": "t-5", "assignee": "bob"}],
}


class AssignmentService:
    """``hang`` holds each request until the mode changes or ``hang_seconds`` pass."""

    def __init__(self, hang_seconds: float = 30.0) -> None:
        self.mode = "ok"
        self.hang_seconds = hang_seconds
        self._changed = threading.Event()

    def router(self) -> Router:
        router = Router()
        router.add("GET", "/assignments", self.list_assignments)
        router.add("POST", "/_admin/mode", self.set_mode)
        router.add("GET", "/_admin/mode", lambda request: Reply(200, {"mode": self.mode}))
        return router

    def list_assignments(self, request: JsonRequest) -> Reply:
        if self.mode == "hang":
            self._changed.wait(self.hang_seconds)
        if self.mode == "fail":
            return Reply(500, {"message": "assignment service failing (demo switch)"})
        project_id = request.query.get("projectId")
        if not project_id:
            return Reply(400, {"message": "projectId is required"})
        return Reply(200, {"assignments": SEED.get(project_id, [])})

    def set_mode(self, request: JsonRequest) -> Reply:
        body = request.json()
        mode = body.get("mode") if isinstance(body, dict) else None
        if mode not in MODES:
            return Reply(400, {"message": f"mode must be one of {list(MODES)}"})
        self.mode = mode
        self._changed.set()  # release requests hanging under the previous mode
        self._changed = threading.Event()
        return Reply(200, {"mode": mode})
