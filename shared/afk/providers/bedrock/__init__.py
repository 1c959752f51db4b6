"""Amazon Bedrock, over the Converse and ConverseStream APIs.

No key: each request is signed with SigV4 (service `bedrock`, the function's region)
with the credentials the function runs under (on Lambda its role's, from the
environment), by afk/sigv4.py: one signed request, no boto3 client on
the hot path. The stream is AWS event-stream framed (providers/eventstream.py).

    POST /model/{modelId}/converse          application/json
    POST /model/{modelId}/converse-stream   application/vnd.amazon.eventstream

`modelId` is the catalog's `upstream`: a foundation model id, or the
cross-region inference profile id (`us.`, `eu.`, ...) for models Bedrock
serves on demand only through one.
https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from afk.catalog import Model
from afk.dialects.jsonwire import dumps
from afk.errors import UpstreamError
from afk.providers import Call, Completion, Embedded
from afk.providers.bedrock import converse
from afk.providers.client import Request
from afk.providers.eventstream import EventStreamDecoder, Message
from afk.providers.images import InlinesImages
from afk.providers.transport import Upstreams, json_body, upstream_errors
from afk.settings import Settings
from afk.sigv4 import Credentials, Signer, env_credentials

SERVICE = "bedrock"  # the SigV4 signing name of bedrock-runtime


class BedrockProvider(InlinesImages[Message]):
    name = "bedrock"
    codec = converse
    framing = EventStreamDecoder

    def __init__(self, settings: Settings, credentials: Any = None, *,
                 upstreams: Upstreams | None = None) -> None:
        # What the operator checks when Bedrock answers 403 (a refused signature, or a
        # model whose access is not enabled): there is no key setting to name.
        super().__init__(settings, key_setting="its AWS credentials and the Bedrock model "
                                               "access of its Region", upstreams=upstreams)
        self.region = settings.region
        self._signer = Signer(SERVICE, settings.region)
        # botocore-style credentials (get_frozen_credentials); None: the environment's
        # (Lambda's role), else botocore's chain (a laptop's profiles).
        self._credentials = credentials

    def credentials(self) -> Credentials:
        """The function's credentials (frozen per request: a role's rotate)."""
        if self._credentials is None:
            found = env_credentials()
            if found is not None:
                return found
            import botocore.session

            self._credentials = botocore.session.get_session().get_credentials()
            if self._credentials is None:
                raise UpstreamError("The gateway has no AWS credentials to call Bedrock with.")
        frozen = self._credentials.get_frozen_credentials()
        return Credentials(str(frozen.access_key), str(frozen.secret_key), frozen.token)

    def url(self, call: Call, *, stream: bool) -> str:
        model = quote(call.model.upstream, safe="")  # profile ids carry a ':'
        return f"{self.base_url}/model/{model}/{'converse-stream' if stream else 'converse'}"

    def headers(self, call: Call) -> dict[str, str]:
        return {"content-type": "application/json"}

    def body(self, call: Call, *, stream: bool) -> dict[str, Any]:
        return converse.render_request(call.request, model=call.model.upstream)

    def request(self, call: Call, *, stream: bool) -> Request:
        return self.signed(self.url(call, stream=stream), self.body(call, stream=stream),
                           accept="application/vnd.amazon.eventstream" if stream
                           else "application/json")

    def signed(self, url: str, body: dict[str, Any], *, accept: str) -> Request:
        """A POST of `body` to `url`, SigV4-signed for Bedrock in this Region."""
        content = dumps(body).encode()
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port and parts.port != (443 if parts.scheme == "https" else 80):
            host = f"{host}:{parts.port}"
        headers = self._signer.sign("POST", parts.path, {
            "content-type": "application/json", "accept": accept, "host": host},
            content, self.credentials(), query=parts.query)
        return Request("POST", url, headers, content)

    async def embed(self, model: Model, texts: list[str], *,
                    dimensions: int | None) -> Embedded:
        """Titan Text Embeddings V2 over InvokeModel, one input per call
        (https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-embed-text.html):
        `{"inputText", "dimensions"}` -> `{"embedding", "inputTextTokenCount"}`."""

        url = f"{self.base_url}/model/{quote(model.upstream, safe='')}/invoke"
        vectors, tokens = [], 0
        for text in texts:
            body: dict[str, Any] = {"inputText": text}
            if dimensions is not None:
                body["dimensions"] = dimensions
            async with upstream_errors(self.name):
                response = await self.client().send(self.signed(url, body,
                                                                 accept="application/json"))
            if response.status_code >= 300:
                raise self.error(response)
            raw = json_body(response, self.name)
            vectors.append(raw.get("embedding") or [])
            tokens += int(raw.get("inputTextTokenCount") or 0)
        return Embedded(vectors=vectors, input_tokens=tokens)

    async def complete(self, call: Call) -> Completion:
        completion = await super().complete(call)
        completion.response.model = call.model.id  # Converse names no model
        return completion
