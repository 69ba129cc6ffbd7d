"""Test function for the emulator's Kafka event source mapping.

Appends one line per invocation to ``BATCH_LOG`` (the records' topic-partition, offset and value,
and whether it succeeded). While the file ``BATCH_FAILURES`` holds a number above zero, each
invocation lowers it by one and fails.
"""

import base64
import json
import os


def _should_fail():
    path = os.environ.get("BATCH_FAILURES", "")
    if not path or not os.path.exists(path):
        return False
    with open(path, encoding="utf-8") as handle:
        left = int(handle.read().strip() or 0)
    if left <= 0:
        return False
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(str(left - 1))
    return True


def handler(event, context):
    failing = _should_fail()
    records = [
        [partition, record["offset"], base64.b64decode(record.get("value", "")).decode()]
        for partition, items in event["records"].items()
        for record in items
    ]
    with open(os.environ["BATCH_LOG"], "a", encoding="utf-8") as handle:
        line = {"ok": not failing, "records": records, "eventSource": event["eventSource"]}
        handle.write(json.dumps(line) + "\n")
    if failing:
        raise RuntimeError("failing on purpose")
    return {"records": len(records)}
