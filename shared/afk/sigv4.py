"""AWS Signature Version 4 with hashlib/hmac, for the lean AWS clients (store/awsjson.py)
and Bedrock's requests (providers/bedrock): no botocore on a request's path.

https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html
The canonical URI is the path as sent, URI-encoded once more (every service but S3
signs the double-encoded path, as botocore's SigV4Auth does); the query is sorted.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from typing import NamedTuple
from urllib.parse import quote


class Credentials(NamedTuple):
    access_key: str
    secret_key: str
    token: str | None = None


def env_credentials() -> Credentials | None:
    """What Lambda puts in every function's environment (its role's, for its life)."""
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        return None
    return Credentials(key, secret, os.environ.get("AWS_SESSION_TOKEN") or None)



class Signer:
    """Signs for one service in one region; keeps the day's signing key."""

    def __init__(self, service: str, region: str) -> None:
        self.service, self.region = service, region
        self._key: tuple[str, str, bytes] | None = None  # (date, secret, signing key)

    def sign(self, method: str, path: str, headers: dict[str, str], body: bytes,
             credentials: Credentials, *, query: str = "") -> dict[str, str]:
        """`headers` (lower-case names, `host` among them) with x-amz-date, the session
        token if any, and the authorization that signs them all."""
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        date = amz_date[:8]
        headers = {**headers, "x-amz-date": amz_date}
        if credentials.token:
            headers["x-amz-security-token"] = credentials.token
        names = sorted(headers)
        signed_names = ";".join(names)
        canonical_query = "&".join(sorted(query.split("&"))) if query else ""
        canonical = "\n".join((
            method, quote(path or "/", safe="/~"), canonical_query,
            *(f"{name}:{' '.join(headers[name].split())}" for name in names), "",
            signed_names, hashlib.sha256(body).hexdigest()))
        scope = f"{date}/{self.region}/{self.service}/aws4_request"
        to_sign = "\n".join(("AWS4-HMAC-SHA256", amz_date, scope,
                             hashlib.sha256(canonical.encode()).hexdigest()))
        signature = hmac.new(self._signing_key(date, credentials.secret_key),
                             to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
            f"SignedHeaders={signed_names}, Signature={signature}")
        return headers

    def _signing_key(self, date: str, secret: str) -> bytes:
        cached = self._key
        if cached is not None and cached[0] == date and cached[1] == secret:
            return cached[2]
        key = ("AWS4" + secret).encode()
        for part in (date, self.region, self.service, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        self._key = (date, secret, key)
        return key
