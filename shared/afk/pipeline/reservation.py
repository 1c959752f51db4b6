"""A call's money: reserved on the way in, settled exactly once on the way out.

    async with Reservation(gateway, principal, model, request, cap=cap,
                           endpoint="messages", request_id=rid) as reservation:
        reservation.calling()  # from here the provider may bill what it ran
        ...                    # feed reservation.meter
        await reservation.settle("ok")  # before the end of the answer reaches the caller

Entering quotes the worst case and reserves it against this environment's credit
lease (billing/wallet.py; a 402 if it cannot be covered). Leaving settles what
nothing settled yet, from how the block ended (docs/money.md, billing/meter.py):

* before the upstream call began, whatever happened: `error`, which charges nothing;
* a `GatewayError` (the upstream failed, or the deadline came): `timeout` or
  `error`, billed at the usage the meter saw or the error reported;
* any other exception, a cancellation (the caller went away) included:
  `disconnected`, billed for what was generated;
* no exception, but no settlement either (a stream that ended without its end):
  `disconnected`.

A second settlement returns the first. Settling never raises: if the store stays
down past its retry budget, the charge is kept and retried by this environment's
next settle.
"""

from __future__ import annotations

import dataclasses
import time
from types import TracebackType
from typing import Literal

import anyio
import anyio.to_thread

from afk import ir, observability
from afk.auth import Principal
from afk.billing.meter import CallOutcome, Meter
from afk.billing.quote import Quote, estimate_input_tokens, make_quote, search_bound
from afk.billing.wallet import Shortfall
from afk.catalog import Model
from afk.errors import GatewayError, InsufficientCredits, UpstreamTimeout
from afk.gateway import Gateway
from afk.money import format_usd
from afk.store import Hold, Settlement
from afk.store.budgets import Budget, OverBudget

RESERVE_ATTEMPTS = 4

# reserved: nothing sent upstream yet; calling: the provider may bill from here;
# settled: the ledger entry is written (or queued), nothing more changes it.
Phase = Literal["reserved", "calling", "settled"]


class Reservation:
    """One call's hold, from reserve to settlement (see the module doc)."""

    def __init__(self, gateway: Gateway, principal: Principal, model: Model,
                 request: ir.Request, *, cap: int | None, endpoint: str,
                 request_id: str) -> None:
        self._gateway = gateway
        self._principal = principal
        self._request = request
        self._cap = cap
        self._endpoint = endpoint
        self._request_id = request_id
        self.model = model  # billed at: the deployment that serves the call, once known
        self.meter = Meter()
        self.phase: Phase = "reserved"
        self.settlement: Settlement | None = None
        self._hold: Hold | None = None
        self._quote: Quote | None = None
        self._fair_input_tokens = 0  # billed for the prompt if no usage is ever reported

    @property
    def hold(self) -> Hold:
        assert self._hold is not None, "not reserved: use `async with`"
        return self._hold

    @property
    def quote(self) -> Quote:
        assert self._quote is not None, "not reserved: use `async with`"
        return self._quote

    async def __aenter__(self) -> Reservation:
        await self._reserve()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.fail(error)

    def calling(self) -> None:
        """The upstream call begins: a failure from now on is billed for what the
        provider ran."""
        if self.phase == "reserved":
            self.phase = "calling"

    async def fail(self, error: BaseException | None) -> Settlement:
        """Settle for how the call ended (`error`: what ended it, None: nothing
        did), unless it is settled already."""
        if self.settlement is not None:
            return self.settlement
        if self.phase == "reserved":
            self.meter = Meter()  # nothing ran upstream: nothing is billed
            return await self.settle("error")
        if isinstance(error, GatewayError):
            if error.usage is not None and self.meter.usage is None:
                self.meter.usage = error.usage
            return await self.settle("timeout" if isinstance(error, UpstreamTimeout)
                                     else "error")
        return await self.settle("ok" if error is None and self.meter.completed
                                 else "disconnected")

    async def settle(self, outcome: CallOutcome) -> Settlement:
        """Charge what the meter says for a call ended as `outcome` and release the
        rest of the hold, once: a second call returns the first settlement."""
        if self.settlement is not None:
            return self.settlement
        hold = self.hold
        settlement = self.settlement = self.meter.settlement(
            self.model, hold=hold.amount, outcome=outcome,
            prompt_tokens_estimate=self._fair_input_tokens)
        self.phase = "settled"
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._gateway.wallet.settle, hold, settlement)
        observability.observe_settlement(  # upstream time ~ since the hold was taken
            self.model.id, hold.endpoint, settlement, settlement.charge,
            int(time.time() * 1000) - hold.created_ms)
        return settlement

    async def _reserve(self) -> None:
        """Quote the worst case and reserve it: no I/O while the lease covers it.

        The first attempt quotes without knowing the balance. If the balance cannot
        cover it, the account the refusal returns is used to re-quote: lowering max
        tokens to what is spendable, or a 402."""
        model, request, principal = self.model, self._request, self._principal
        search_tokens, search_fees = search_bound(model, request)
        input_tokens = estimate_input_tokens(request) + search_tokens
        cap, balance = self._cap, None
        over: OverBudget | None = None  # the key's spend limit refused the last attempt
        wallet = self._gateway.wallet
        now_ms = int(time.time() * 1000)
        budget = Budget.of(principal.key_id, principal.limits.per_day,
                           principal.limits.per_month, now_ms)
        for _ in range(RESERVE_ATTEMPTS):
            try:
                quote = make_quote(model, input_tokens=input_tokens,
                                   requested=request.max_output_tokens, cap=cap,
                                   balance=balance, fees=search_fees)
            except InsufficientCredits as refused:
                if over is None or refused.code != "insufficient_credits":
                    raise
                raise over_budget(over) from None
            hold = Hold(id=self._request_id, account_id=principal.account_id,
                        amount=quote.amount, model=model.id, endpoint=self._endpoint,
                        key_id=principal.key_id, created_ms=now_ms, budget=budget)
            lease = wallet.reserve_local(hold)
            if lease is None:
                result = await anyio.to_thread.run_sync(wallet.reserve, hold)
                if isinstance(result, Shortfall):
                    if result.account is not None:
                        cap = self._gateway.remember(result.account).caps.get(model.id)
                    over = result.over
                    balance = result.spendable if balance is None else min(
                        balance, result.spendable)
                    continue
                lease = result
            self._hold = dataclasses.replace(hold, lease_id=lease.id)
            self._quote = quote
            self._fair_input_tokens = estimate_input_tokens(request, fair=True)
            return
        raise InsufficientCredits("The balance is changing too fast to reserve credits for "
                                  "this request; retry it.", code="insufficient_credits")


def over_budget(over: OverBudget) -> InsufficientCredits:
    """The 402 of a call its key's spend limit cannot cover, naming the limit."""
    what = over.budget.describe(over.period)
    return InsufficientCredits(
        f"This key's spend limit of ${format_usd(over.limit)} {what} is reached: "
        f"${format_usd(min(over.used, over.limit))} is spent or held by calls in flight, and "
        f"this request needs more than the ${format_usd(over.room)} left. It resets "
        f"{'at 00:00 UTC' if over.period.startswith('DAY#') else 'on the 1st (UTC)'}; "
        "a higher limit is for the account owner or the operator to set.",
        code="key_budget_exceeded")
