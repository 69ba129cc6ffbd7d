"""Demo Auth, Ticket and Assignment services for the local stack; not part of the gateway."""
