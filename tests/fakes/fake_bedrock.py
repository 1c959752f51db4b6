"""A fake Amazon Bedrock runtime: Converse and ConverseStream over real HTTP.

    POST /model/{modelId}/converse          JSON in, JSON out
    POST /model/{modelId}/converse-stream   JSON in, application/vnd.amazon.eventstream out

What it insists on, as Bedrock does: a SigV4 `Authorization` header for service
`bedrock` in the fake's region, with `x-amz-date` signed, whose signature it
recomputes from the request as received (botocore's signer, the secret it was
given); else 403 `{"message": ...}` with `x-amzn-ErrorType`
(https://docs.aws.amazon.com/bedrock/latest/APIReference/CommonErrors.html).

Streams are framed in the real event-stream encoding, written here independently
of the gateway's decoder (prelude, headers, payload, two CRC32s:
https://docs.aws.amazon.com/lexv2/latest/dg/event-stream-encoding.html), each frame
split across two writes so that decoding must be incremental. Event payloads carry
Bedrock's `p` padding field.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .upstream import FakeUpstream, fake_vector, json_dumps, split_words

REGION = "us-east-1"
ACCESS_KEY = "AKIAFAKEBEDROCK00001"
SECRET_KEY = "fake-bedrock-secret-key/0123456789abcdef"
SESSION_TOKEN = "fake-session-token-from-the-lambda-role"
_AUTH = re.compile(r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
                   r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
                   r"Signature=(?P<signature>[0-9a-f]{64})$")


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message; every header a string (type 7), as Bedrock sends."""
    raw_headers = b""
    for name, value in headers.items():
        name_bytes, value_bytes = name.encode(), value.encode()
        raw_headers += (struct.pack(">B", len(name_bytes)) + name_bytes + b"\x07"
                        + struct.pack(">H", len(value_bytes)) + value_bytes)
    total = 16 + len(raw_headers) + len(payload)
    prelude = struct.pack(">II", total, len(raw_headers))
    head = prelude + struct.pack(">I", zlib.crc32(prelude)) + raw_headers + payload
    return head + struct.pack(">I", zlib.crc32(head))


def event(kind: str, data: dict[str, Any]) -> bytes:
    return encode_message({":event-type": kind, ":content-type": "application/json",
                           ":message-type": "event"},
                          json_dumps({**data, "p": "abcdefghijklmnop"[: 1 + len(kind) % 16]})
                          .encode())


def exception(kind: str, message: str) -> bytes:
    return encode_message({":exception-type": kind, ":content-type": "application/json",
                           ":message-type": "exception"}, json_dumps({"message": message})
                          .encode())


@dataclass
class Reply:
    """One scripted Converse answer."""

    text: str | None = "Hello from Bedrock!"
    reasoning: str | None = None  # a reasoningContent block first (Claude's thinking)
    signature: str = "EqQBCkYIBxgCKkD-fake-bedrock-signature"
    # [{"id": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}]
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    input_tokens: int = 12
    output_tokens: int = 7
    cache_read: int | None = None
    cache_write: int | None = None
    stop_reason: str | None = None  # default end_turn, tool_use with tool calls
    status: int = 200  # non-200: {"message"} + x-amzn-ErrorType
    error_type: str = "InternalServerException"
    stream_exception: str | None = None  # e.g. "throttlingException", after the content
    truncate: bool = False  # stream: end before messageStop/metadata

    @property
    def stop(self) -> str:
        return self.stop_reason or ("tool_use" if self.tool_calls else "end_turn")

    def usage(self) -> dict[str, Any]:
        usage: dict[str, Any] = {"inputTokens": self.input_tokens,
                                 "outputTokens": self.output_tokens}
        total = self.input_tokens + self.output_tokens
        for name, value in (("cacheReadInputTokens", self.cache_read),
                            ("cacheWriteInputTokens", self.cache_write)):
            if value is not None:
                usage[name] = value
                total += value
        usage["totalTokens"] = total
        return usage

    def content(self) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = [{"reasoningContent": {"reasoningText": {
            "text": self.reasoning, "signature": self.signature}}}] if self.reasoning else []
        blocks += [{"text": self.text}] if self.text else []
        return blocks + [{"toolUse": {"toolUseId": c["id"], "name": c["name"],
                                      "input": c["input"]}} for c in self.tool_calls]

    def events(self) -> list[bytes]:
        out = [event("messageStart", {"role": "assistant"})]
        index = 0
        if self.reasoning:
            out += [event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {
                "reasoningContent": {"text": piece}}}) for piece in split_words(self.reasoning)]
            out += [event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {
                "reasoningContent": {"signature": self.signature}}}),
                    event("contentBlockStop", {"contentBlockIndex": 0})]
            index = 1
        if self.text:
            out += [event("contentBlockDelta", {"contentBlockIndex": index,
                                                "delta": {"text": piece}})
                    for piece in split_words(self.text)]
            out.append(event("contentBlockStop", {"contentBlockIndex": index}))
            index += 1
        for i, call in enumerate(self.tool_calls, start=index):
            out.append(event("contentBlockStart", {"contentBlockIndex": i, "start": {
                "toolUse": {"toolUseId": call["id"], "name": call["name"]}}}))
            arguments = json_dumps(call["input"])
            middle = len(arguments) // 2
            for fragment in (arguments[:middle], arguments[middle:]):
                out.append(event("contentBlockDelta", {"contentBlockIndex": i, "delta": {
                    "toolUse": {"input": fragment}}}))
            out.append(event("contentBlockStop", {"contentBlockIndex": i}))
        if self.stream_exception:
            return out + [exception(self.stream_exception, "Something went wrong upstream.")]
        if self.truncate:
            return out
        return out + [event("messageStop", {"stopReason": self.stop}),
                      event("metadata", {"usage": self.usage(),
                                         "metrics": {"latencyMs": 321}})]


class FakeBedrock(FakeUpstream[Reply]):
    def __init__(self, region: str = REGION) -> None:
        super().__init__()
        self.region = region
        self.signatures_checked = 0
        self.app = Starlette(routes=[
            Route("/model/{model:path}/converse", self._converse, methods=["POST"]),
            Route("/model/{model:path}/converse-stream", self._converse_stream,
                  methods=["POST"]),
            Route("/model/{model:path}/invoke", self._invoke, methods=["POST"]),
        ])

    def default_reply(self) -> Reply:
        return Reply()

    def reset(self) -> None:
        super().reset()
        self.signatures_checked = 0

    # ----- routes ------------------------------------------------------------------------
    async def _begin(self, request: Request) -> Reply | Response:
        """Record and check the request, take the next reply; an error answers now."""
        refused = await self._admit(request)
        if refused is not None:
            return refused
        reply = self.next_reply()
        if reply.status != 200:
            return self._error(reply.status, reply.error_type, "Scripted failure.")
        return reply

    async def _converse(self, request: Request) -> Response:
        reply = await self._begin(request)
        if isinstance(reply, Response):
            return reply
        return JSONResponse({"output": {"message": {"role": "assistant",
                                                    "content": reply.content()}},
                             "stopReason": reply.stop, "usage": reply.usage(),
                             "metrics": {"latencyMs": 321}},
                            headers={"x-amzn-requestid": "fake-request-id"})

    async def _converse_stream(self, request: Request) -> Response:
        reply = await self._begin(request)
        if isinstance(reply, Response):
            return reply

        async def frames() -> AsyncGenerator[bytes, None]:
            for frame in reply.events():
                # Split each frame inside its prelude: the decoder must wait for the rest.
                yield frame[:5]
                yield frame[5:]

        return StreamingResponse(self.tracked(frames()),
                                 media_type="application/vnd.amazon.eventstream",
                                 headers={"x-amzn-requestid": "fake-request-id"})

    async def _invoke(self, request: Request) -> Response:
        """InvokeModel on Titan Text Embeddings V2: {"inputText", "dimensions"} ->
        {"embedding", "inputTextTokenCount"} (one token per 4 bytes, at least 1)."""
        recorded = await self.record(request)
        problem = self._signature_problem(request, recorded.raw)
        if problem is not None:
            return self._error(403, "InvalidSignatureException", problem)
        body = recorded.body if isinstance(recorded.body, dict) else {}
        if not isinstance(body.get("inputText"), str):
            return self._error(400, "ValidationException", "inputText is required.")
        text = body["inputText"]
        return JSONResponse({"embedding": fake_vector(text, body.get("dimensions")),
                             "inputTextTokenCount": max(1, len(text.encode()) // 4)})

    # ----- checks ------------------------------------------------------------------------
    async def _admit(self, request: Request) -> Response | None:
        recorded = await self.record(request)
        if request.headers.get("content-type") != "application/json":
            return self._error(400, "ValidationException", "Content-Type must be JSON.")
        problem = self._signature_problem(request, recorded.raw)
        if problem is not None:
            return self._error(403, "InvalidSignatureException", problem)
        if not isinstance(recorded.body, dict) or not isinstance(
                recorded.body.get("messages"), list):
            return self._error(400, "ValidationException", "messages is required.")
        return None

    def _signature_problem(self, request: Request, body: bytes) -> str | None:
        header = request.headers.get("authorization")
        if not header:
            return "Missing Authentication Token"
        match = _AUTH.match(header)
        if match is None:
            return "Authorization header requires a SigV4 signature."
        if (match["key"], match["service"]) != (ACCESS_KEY, "bedrock"):
            return "The security token included in the request is invalid."
        if match["region"] != self.region:
            return (f"Credential should be scoped to a valid region, not "
                    f"'{match['region']}'. ")
        signed = match["signed"].split(";")
        if not {"host", "x-amz-date", "x-amz-security-token"} <= set(signed):
            return "host, x-amz-date and x-amz-security-token must be signed."
        if request.headers.get("x-amz-security-token") != SESSION_TOKEN:
            return "The security token included in the request is invalid."
        if self._signature(request, body, signed) != match["signature"]:
            return ("The request signature we calculated does not match the signature you "
                    "provided.")
        self.signatures_checked += 1
        return None

    def _signature(self, request: Request, body: bytes, signed: list[str]) -> str:
        """SigV4 of the request as received, by botocore's signer, with our secret."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        raw_path = request.scope["raw_path"].decode()
        url = f"http://{request.headers['host']}{raw_path}"
        aws = AWSRequest(method="POST", url=url, data=body,
                         headers={name: request.headers[name] for name in signed})
        aws.context["timestamp"] = request.headers["x-amz-date"]
        signer = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY, SESSION_TOKEN), "bedrock",
                           self.region)
        canonical = signer.canonical_request(aws)
        return signer.signature(signer.string_to_sign(aws, canonical), aws)

    @staticmethod
    def _error(status: int, kind: str, message: str) -> Response:
        return JSONResponse({"message": message}, status, headers={
            "x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/",
            "x-amzn-requestid": "fake-request-id"})
