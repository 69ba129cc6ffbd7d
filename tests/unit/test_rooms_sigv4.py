"""The Management API signer against AWS's published SigV4 test-suite case and against botocore.

The published case is ``get-vanilla`` of AWS's Signature Version 4 test suite (a GET of ``/`` on
``example.amazonaws.com``, service ``service``, 2015-08-30 12:36:00 UTC, the documentation's
example key pair): its canonical request hash and signature are known answers. The botocore
comparisons sign the very request a broadcast sends, ``POST /{stage}/@connections/{id}`` with a
connection id that needs percent-encoding, and must yield the same ``Authorization`` header.
"""

from __future__ import annotations

import datetime
import hashlib
import re
from pathlib import Path

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotocoreCredentials

from gateway.rooms.sigv4 import CredentialSource, Signer, payload_hash

EXAMPLE_KEY = "AKIDEXAMPLE"
EXAMPLE_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
VANILLA_TIME = datetime.datetime(2015, 8, 30, 12, 36, tzinfo=datetime.UTC)
VANILLA_SIGNATURE = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
VANILLA_CANONICAL_HASH = "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"

POST_TIME = datetime.datetime(2026, 12, 3, 17, 5, 9, tzinfo=datetime.UTC)
ENDPOINT = "https://a1b2c3d4e5.execute-api.eu-west-3.amazonaws.com/prod"
CONNECTION_PATH = "/prod/@connections/L0SM9cOFvHcCIhw%3D"
BODY = b'{"type": "ticket.updated", "eventId": "ticket.updated-0-41"}'
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD+example/token=="


def _source(token: str | None = None) -> CredentialSource:
    environ = {"AWS_ACCESS_KEY_ID": EXAMPLE_KEY, "AWS_SECRET_ACCESS_KEY": EXAMPLE_SECRET}
    if token:
        environ["AWS_SESSION_TOKEN"] = token
    return CredentialSource(environ)


def _botocore_headers(
    monkeypatch: pytest.MonkeyPatch,
    *,
    url: str,
    body: bytes,
    region: str,
    token: str | None,
    when: datetime.datetime,
) -> dict[str, str]:
    # botocore reads the clock through this function; the naive UTC time is what it expects.
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: when.replace(tzinfo=None))
    request = AWSRequest(method="POST", url=url, data=body)
    credentials = BotocoreCredentials(EXAMPLE_KEY, EXAMPLE_SECRET, token)
    SigV4Auth(credentials, "execute-api", region).add_auth(request)
    return dict(request.headers.items())


def test_signer_reproduces_the_published_get_vanilla_signature() -> None:
    signer = Signer(_source(), region="us-east-1", service="service")

    headers = dict(
        signer.headers(
            "GET",
            "example.amazonaws.com",
            "/",
            payload_hash(b""),
            now=VANILLA_TIME.timestamp(),
        )
    )

    assert headers["X-Amz-Date"] == "20150830T123600Z"
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={VANILLA_SIGNATURE}"
    )


def test_get_vanilla_canonical_request_hashes_to_the_published_value() -> None:
    # The canonical request the signer builds for get-vanilla, spelled out as the suite gives it;
    # the signature test above fails with it if the signer's layout drifts.
    canonical = (
        "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
        f"host;x-amz-date\n{payload_hash(b'')}"
    )

    assert hashlib.sha256(canonical.encode()).hexdigest() == VANILLA_CANONICAL_HASH


@pytest.mark.parametrize("token", [None, SESSION_TOKEN], ids=["long-term", "session-token"])
def test_signer_matches_botocore_sigv4_on_a_post_to_connection(
    monkeypatch: pytest.MonkeyPatch, token: str | None
) -> None:
    signer = Signer(_source(token), region="eu-west-3")

    ours = dict(
        signer.headers(
            "POST",
            "a1b2c3d4e5.execute-api.eu-west-3.amazonaws.com",
            CONNECTION_PATH,
            payload_hash(BODY),
            now=POST_TIME.timestamp(),
        )
    )
    theirs = _botocore_headers(
        monkeypatch,
        url=ENDPOINT + CONNECTION_PATH.removeprefix("/prod"),
        body=BODY,
        region="eu-west-3",
        token=token,
        when=POST_TIME,
    )

    assert ours["Authorization"] == theirs["Authorization"]
    assert ours["X-Amz-Date"] == theirs["X-Amz-Date"] == "20261203T170509Z"
    if token:
        assert ours["X-Amz-Security-Token"] == theirs["X-Amz-Security-Token"] == token
        assert "x-amz-security-token" in ours["Authorization"]
    else:
        assert "X-Amz-Security-Token" not in ours


def test_signer_matches_botocore_for_a_host_with_a_port_and_no_stage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A moto server or the local emulator: the Host header carries the port, and is signed so.
    signer = Signer(_source(), region="us-east-1")
    path = "/@connections/c%2F1%3D"

    ours = dict(
        signer.headers(
            "POST", "127.0.0.1:4510", path, payload_hash(BODY), now=POST_TIME.timestamp()
        )
    )
    theirs = _botocore_headers(
        monkeypatch,
        url="http://127.0.0.1:4510" + path,
        body=BODY,
        region="us-east-1",
        token=None,
        when=POST_TIME,
    )

    assert ours["Authorization"] == theirs["Authorization"]


def test_signing_key_is_derived_once_per_day_and_again_for_a_new_day_or_secret() -> None:
    environ = {"AWS_ACCESS_KEY_ID": EXAMPLE_KEY, "AWS_SECRET_ACCESS_KEY": EXAMPLE_SECRET}
    signer = Signer(CredentialSource(environ), region="us-east-1")
    day = POST_TIME.timestamp()

    signer.headers("POST", "h", "/p", payload_hash(b""), now=day)
    first = signer._key
    signer.headers("POST", "h", "/q", payload_hash(b"x"), now=day + 3600)

    assert signer._key is first
    signer.headers("POST", "h", "/p", payload_hash(b""), now=day + 86400)
    assert signer._key is not first
    assert signer._key is not None
    assert signer._key[1] == "20261204"

    environ["AWS_SECRET_ACCESS_KEY"] = "rotated"
    authorization = dict(signer.headers("POST", "h", "/p", payload_hash(b""), now=day + 86400))
    assert signer._key[0] == "rotated"
    assert re.search(r"Signature=[0-9a-f]{64}$", authorization["Authorization"])


def test_credentials_come_from_the_environment_with_the_session_token() -> None:
    source = CredentialSource(
        {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t"}
    )

    credentials = source.get()

    assert credentials is not None
    assert (credentials.access_key, credentials.secret_key, credentials.token) == ("k", "s", "t")
    assert source.get() is credentials


def test_credentials_fall_back_to_botocore_chain_when_the_environment_has_none(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A shared credentials file is one link of botocore's chain; the source's own environment
    # mapping is empty, so only the chain can find these.
    credentials_file = tmp_path / "credentials"
    credentials_file.write_text(
        "[default]\naws_access_key_id = FROMFILE\naws_secret_access_key = s3cr3t\n"
    )
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials_file))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(credentials_file) + ".absent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    credentials = CredentialSource({}).get()

    assert credentials is not None
    assert (credentials.access_key, credentials.secret_key, credentials.token) == (
        "FROMFILE",
        "s3cr3t",
        None,
    )


def test_no_credentials_anywhere_means_no_signature_headers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    absent = str(tmp_path / "absent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", absent)
    monkeypatch.setenv("AWS_CONFIG_FILE", absent)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)

    signer = Signer(CredentialSource({}), region="us-east-1")

    assert signer.headers("POST", "h", "/p", payload_hash(b"")) == []
