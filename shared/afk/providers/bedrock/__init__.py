"""Amazon Bedrock, over the Converse and ConverseStream APIs.

No key: each request is signed with SigV4 (service `bedrock`, the function's region)
with the credentials the function runs under (on Lambda its role's, from the
environment), by botocore's signer: one signed httpx request, no boto3 client on
the hot path. The stream is AWS event-stream framed (providers/eventstream.py).

    POST /model/{modelId}/converse          application/json
    POST /model/{modelId}/converse-stream   application/vnd.amazon.eventstream

`modelId` is the catalog's `upstream`: a foundation model id, or the
cross-region inference profile id (`us.`, `eu.`, ...) for models Bedrock
serves on demand only through one.
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx

from afk.errors import UpstreamError
from afk.providers import Call, Completion
from afk.providers.base import HTTPProvider
from afk.providers.bedrock import converse
from afk.providers.eventstream import EventStreamDecoder
from afk.providers.images import InlinesImages
from afk.settings import Settings

SERVICE = "bedrock"  # the SigV4 signing name of bedrock-runtime


class BedrockProvider(InlinesImages, HTTPProvider):
    name = "bedrock"
    codec = converse
    framing = EventStreamDecoder

    def __init__(self, settings: Settings, credentials: Any = None) -> None:
        # What the operator checks when Bedrock answers 403 (a refused signature, or a
        # model whose access is not enabled): there is no key setting to name.
        super().__init__(settings, key_setting="its AWS credentials and the Bedrock model "
                                               "access of its Region")
        self.region = settings.region
        self._credentials = credentials  # botocore Credentials; None: the default chain

    def credentials(self) -> Any:
        """The function's credentials (frozen per request: a role's rotate)."""
        if self._credentials is None:
            import botocore.session

            self._credentials = botocore.session.get_session().get_credentials()
            if self._credentials is None:
                raise UpstreamError("The gateway has no AWS credentials to call Bedrock with.")
        return self._credentials.get_frozen_credentials()

    def url(self, call: Call, *, stream: bool) -> str:
        model = quote(call.model.upstream, safe="")  # profile ids carry a ':'
        return f"{self.base_url}/model/{model}/{'converse-stream' if stream else 'converse'}"

    def headers(self, call: Call) -> dict[str, str]:
        return {"content-type": "application/json"}

    def body(self, call: Call, *, stream: bool) -> dict[str, Any]:
        return converse.render_request(call.request, model=call.model.upstream)

    def request(self, call: Call, *, stream: bool) -> httpx.Request:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        url = self.url(call, stream=stream)
        content = json.dumps(self.body(call, stream=stream), separators=(",", ":"),
                             ensure_ascii=False).encode()
        signed = AWSRequest(method="POST", url=url, data=content, headers={
            **self.headers(call),
            "accept": "application/vnd.amazon.eventstream" if stream else "application/json"})
        SigV4Auth(self.credentials(), SERVICE, self.region).add_auth(signed)
        return self.client().build_request("POST", url, content=content,
                                           headers=dict(signed.headers.items()))

    async def complete(self, call: Call) -> Completion:
        completion = await super().complete(call)
        completion.response.model = call.model.id  # Converse names no model
        return completion
