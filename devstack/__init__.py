"""The one-command developer stack: the backing services and the demo services around the emulator.

Nothing in this package is deployed: it exists so that ``make run`` and the tests can start real
Redis and a real Kafka-protocol broker on loopback without Docker.
"""
