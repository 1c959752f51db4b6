"""One TLS context per process, shared by the upstream client (httpx) and the
DynamoDB client: loading the CA bundle is a cold start's single largest native
call (~20-40 ms of CPU, bench/RESULTS.md), so it is paid once, not per client."""

from __future__ import annotations

import functools
import ssl


@functools.cache
def context() -> ssl.SSLContext:
    import certifi  # httpx's own default trust store, so upstream trust is unchanged

    return ssl.create_default_context(cafile=certifi.where())
