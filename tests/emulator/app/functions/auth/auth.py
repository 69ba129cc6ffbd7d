"""A REQUEST authorizer for tests: the token says what to answer.

Simple responses (identity source: Authorization): ``allow-<user>``, ``deny``, ``error``,
``garbage``. IAM policy (identity sources: X-Token header and tenant query): ``allow-<user>`` or
``deny``. Every answer carries the number of calls this worker has served, to see the cache work.
"""

CALLS = {"count": 0}


def handler(event, context):
    CALLS["count"] += 1
    headers = event.get("headers") or {}
    token = headers.get("x-token") or headers.get("authorization", "")
    if token == "error":
        raise RuntimeError("authorizer failure requested")
    if token == "garbage":
        return "not an authorizer answer"
    allowed = token.startswith("allow-")
    context_values = {
        "user": token.removeprefix("allow-"),
        "calls": CALLS["count"],
        "eventKeys": ",".join(sorted(event)),
        "identitySource": ",".join(event.get("identitySource") or []),
    }
    if "x-token" in headers:
        return {
            "principalId": context_values["user"],
            "policyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Action": "execute-api:Invoke",
                        "Effect": "Allow" if allowed else "Deny",
                        "Resource": event["routeArn"],
                    }
                ],
            },
            "context": context_values,
        }
    return {"isAuthorized": allowed, "context": context_values}
