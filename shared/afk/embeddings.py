"""Embeddings: one call end to end, billed on input tokens like every call.

auth (at the route) -> model lookup (an embedding model, else 400) -> quote the
inputs' bound (one token per byte, each input clamped to the model's input limit:
the provider refuses, and does not bill, a longer one) -> reserve -> the
provider's embedding API -> settle at the tokens it reports (Gemini reports none:
the fair estimate, marked estimated in the ledger) -> vectors.

Per-call caps bound the input cost; output caps and clamps do not apply (there is
no output).
"""

from __future__ import annotations

import anyio.to_thread

from afk import ir
from afk.auth import Principal
from afk.catalog import Model
from afk.errors import GatewayError, InvalidRequest
from afk.gateway import Gateway
from afk.pipeline import Reservation, enforce_rate_limit
from afk.providers import Embedder
from afk.records import dataclass
from afk.store import Settlement

MAX_INPUTS = 2048  # OpenAI's limit per request; Gemini's batch limit is lower (100)
PER_INPUT_OVERHEAD = 16


@dataclass(slots=True, kw_only=True)
class Embeddings:
    model: Model
    vectors: list[list[float]]
    settlement: Settlement


def check_inputs(texts: object, param: str = "input") -> list[str]:
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts:
        raise InvalidRequest(f"'{param}' must be a string or a non-empty array of strings.",
                             param=param)
    if len(texts) > MAX_INPUTS:
        raise InvalidRequest(f"'{param}' may hold at most {MAX_INPUTS} inputs.", param=param)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidRequest(f"{param}[{i}] must be a string (token arrays are not "
                                 "accepted by this gateway).", param=param)
        if not text:
            raise InvalidRequest(f"{param}[{i}] is empty.", param=param)
    return texts


async def embed(gateway: Gateway, principal: Principal, model_id: str, texts: list[str], *,
                dimensions: int | None, endpoint: str, request_id: str) -> Embeddings:
    await enforce_rate_limit(gateway, principal)
    model, view = await anyio.to_thread.run_sync(gateway.model_for, principal, model_id)
    if model.kind != "embedding":
        raise InvalidRequest(f"{model.id} is not an embedding model; embedding models are "
                             "listed on /v1/models with their prices.", param="model",
                             code="model_not_supported")
    if dimensions is not None and (isinstance(dimensions, bool) or not isinstance(
            dimensions, int) or dimensions < 1):
        raise InvalidRequest("'dimensions' must be a positive integer.", param="dimensions")
    bound = sum(min(len(t.encode()) + PER_INPUT_OVERHEAD, model.context_window) for t in texts)
    request = ir.Request(model=model.id, max_output_tokens=1, input_bound=bound, messages=[
        ir.Message(role="user", content=[ir.Text(text=t) for t in texts])])
    provider = gateway.provider(model.provider)
    if not isinstance(provider, Embedder):
        raise GatewayError(f"The {model.provider} provider has no embedding API.", status=501,
                           code="provider_not_available")
    async with Reservation(gateway, principal, model, request, cap=view.caps.get(model.id),
                           endpoint=endpoint, request_id=request_id) as reservation:
        reservation.calling()
        embedded = await provider.embed(model, texts, dimensions=dimensions)
        if embedded.input_tokens is not None:
            reservation.meter.usage = ir.Usage(input_tokens=embedded.input_tokens)
        reservation.meter.completed = True
        settlement = await reservation.settle("ok")
    return Embeddings(model=model, vectors=embedded.vectors, settlement=settlement)
