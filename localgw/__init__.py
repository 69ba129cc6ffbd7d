"""localgw: API Gateway and Lambda for a SAM template, on this machine, without Docker.

``python -m localgw --template template.yaml`` serves the template's HTTP API (and, with part 2's
modules, its WebSocket API and Kafka event source mappings). The pieces:

- :mod:`localgw.template` and :mod:`localgw.intrinsics`: the template, translated and resolved;
- :mod:`localgw.runtime`: warm worker processes per function;
- :mod:`localgw.routes`, :mod:`localgw.events`, :mod:`localgw.authorizer`, :mod:`localgw.cors`:
  API Gateway's HTTP API behaviour, without I/O;
- :mod:`localgw.http_server` and :mod:`localgw.httpapi`: the HTTP transport and the request path;
- :mod:`localgw.app` and :mod:`localgw.cli`: the emulator as one object, and its command line.

See docs/emulator.md.
"""
