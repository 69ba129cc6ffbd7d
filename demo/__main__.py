"""``python -m demo``: run the demo Auth, Ticket and Assignment services until interrupted.

Prints one line per service, ``<name> http://127.0.0.1:<port>``, once each listens.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from demo.assignments import AssignmentService
from demo.auth import AuthService
from demo.tickets import TicketService
from demo.web import serve


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--auth-port", type=int, default=0)
    parser.add_argument("--tickets-port", type=int, default=0)
    parser.add_argument("--assignments-port", type=int, default=0)
    parser.add_argument("--issuer", default="http://127.0.0.1/auth", help="the tokens' iss")
    parser.add_argument("--audience", default="syncroboard", help="the tokens' aud")
    parser.add_argument("--kafka", help="bootstrap servers for ticket.updated (none: no records)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s demo %(levelname)s %(message)s")

    tickets = TicketService(args.kafka)
    services = [
        ("auth", AuthService(args.issuer, args.audience).router(), args.auth_port),
        ("tickets", tickets.router(), args.tickets_port),
        ("assignments", AssignmentService().router(), args.assignments_port),
    ]
    servers = [serve(router, args.host, port, name) for name, router, port in services]
    for (name, _, _), server in zip(services, servers, strict=True):
        threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
        print(f"{name} http://{args.host}:{server.server_address[1]}", flush=True)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stop.wait()
    for server in servers:
        server.shutdown()
        server.server_close()
    tickets.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
