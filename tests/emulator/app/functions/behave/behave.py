"""Misbehaves on request: the path parameter ``mode`` says how."""

import base64
import os
import subprocess
import sys
import time


def _spawn_and_sleep(pidfile):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with open(pidfile, "w") as handle:
        handle.write(str(child.pid))
    time.sleep(30)


MODES = {
    "string": lambda event: "just a string",
    "object": lambda event: {"hello": "world"},
    "crash": lambda event: 1 / 0,
    "exit": lambda event: os._exit(3),
    "sleep": lambda event: time.sleep(30),
    "unserialisable": lambda event: {"value": {1, 2}},
    "malformed": lambda event: {"statusCode": "not-a-number", "body": "x"},
    "binary": lambda event: {
        "statusCode": 200,
        "headers": {"content-type": "application/octet-stream"},
        "body": base64.b64encode(bytes(range(256))).decode(),
        "isBase64Encoded": True,
    },
    "cookies": lambda event: {
        "statusCode": 201,
        "headers": {"x-one": "1"},
        "cookies": ["a=1; Path=/", "b=2; HttpOnly"],
        "body": "made",
    },
    "own-cors": lambda event: {
        "statusCode": 200,
        "headers": {"access-control-allow-origin": "*", "x-kept": "yes"},
        "body": "",
    },
    "huge": lambda event: {"statusCode": 200, "body": "x" * (7 * 1024 * 1024)},
    "spawn-and-sleep": lambda event: _spawn_and_sleep(event["queryStringParameters"]["pidfile"]),
    "print": lambda event: print("printed by the handler") or {"statusCode": 204},
    "echo-body": lambda event: {
        "statusCode": 200,
        "body": event.get("body", ""),
        "isBase64Encoded": event.get("isBase64Encoded", False),
    },
}


def handler(event, context):
    return MODES[event["pathParameters"]["mode"]](event)
