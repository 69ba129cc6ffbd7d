"""Test functions for the emulator's WebSocket API: a token authorizer and one route handler.

The authorizer allows tokens starting with ``good``, denies others, and fails on ``crash``. The
route handler appends each event to the file named by ``EVENTS_LOG`` and answers with the event,
so that tests can read what API Gateway would have sent.
"""

import json
import os

import boto3


def authorize(event, context):
    token = (event.get("queryStringParameters") or {}).get("token", "")
    if token == "crash":
        raise RuntimeError("the authorizer broke")
    effect = "Allow" if token.startswith("good") else "Deny"
    return {
        "principalId": f"user-{token}",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {"Action": "execute-api:Invoke", "Effect": effect, "Resource": event["methodArn"]}
            ],
        },
        "context": {"userId": f"user-{token}", "projects": "p-1", "admin": False, "level": 3},
    }


def _record(event):
    path = os.environ.get("EVENTS_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(event) + "\n")


def route(event, context):
    _record(event)
    context_ = event["requestContext"]
    key = context_["routeKey"]
    if key == "$connect":
        refuse = (event.get("queryStringParameters") or {}).get("refuse")
        return {"statusCode": int(refuse) if refuse else 200}
    if key == "crash":
        raise RuntimeError("the route broke")
    if key == "push":
        client = boto3.client(
            "apigatewaymanagementapi", endpoint_url=os.environ["WS_MANAGEMENT_ENDPOINT"]
        )
        client.post_to_connection(ConnectionId=context_["connectionId"], Data=b"pushed")
        return {"statusCode": 200}
    return {"statusCode": 200, "body": json.dumps({"routeKey": key, "event": event})}
