"""Answers with the event, a few environment variables and the context it was given."""

import json
import os

import shared_helpers


def handler(event, context):
    body = {
        "event": event,
        "env": {
            name: os.environ.get(name)
            for name in (
                "SHARED",
                "GLOBAL_VAR",
                "GREETING",
                "API_ID",
                "FLAVOR",
                "EXTRA",
                "AWS_LAMBDA_FUNCTION_NAME",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                "AWS_REGION",
                "EMULATOR_ONLY",
            )
        },
        "context": {
            "aws_request_id": context.aws_request_id,
            "function_name": context.function_name,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "remaining_ms": context.get_remaining_time_in_millis(),
        },
        "layer": shared_helpers.LAYER_MARK,
        "pid": os.getpid(),
    }
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body),
    }
