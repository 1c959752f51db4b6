"""Logs and metrics for the functions: Powertools on Lambda, cheap no-ops elsewhere.

The whole API:

* `configure(settings)`: once per process (the app factory calls it). Always
  installs the redaction filter on the log handlers; on Lambda (a metrics
  namespace is configured) also routes every log record through Powertools'
  JSON formatter and turns metrics on. Powertools is imported only then.
* `request_scope(request_id)`: the request-id middleware opens one per request;
  `bind(account_id=..., model=...)` adds fields to it. Every log record emitted
  during the request carries them (request_id, route, account_id, model).
* `observe_request(route, status)`: a request is done: Requests, Errors (5xx),
  ClientErrors (4xx), flushed as one EMF line at once, so the uvicorn-based
  streaming functions, which have no Lambda handler to decorate, emit per request.
* `observe_settlement(model, route, usage, cost_pico, upstream_ms)`: a generation
  was billed: InputTokens, OutputTokens, CostNanoUSD, UpstreamLatency; and, when
  usage exceeded the hold (a quoting bug), UncoveredNanoUSD and an error log.
* `redact(text)`: what every log line goes through: no caller or provider key
  (`Authorization`, `x-api-key`, `x-goog-api-key`, `?key=`, a key by its shape,
  or a provider key the gateway was configured with, `register_secret`) ever
  reaches a log.
* `install_redaction()`: puts the redaction on every handler there is now. Log
  records are redacted three times over, so no order of setup can skip it:
  when they are created (a record factory: every record of every logger, even
  one that reaches Python's last-resort handler), by a filter on every handler
  (arguments, extras, tracebacks), and as whole formatted lines (a formatter
  wrapper). uvicorn replaces its handlers when it configures logging, which
  `afk dev` does after the app is built, so the app runs this again at startup.

Traces: the template turns on X-Ray active tracing (API Gateway and Lambda
segments, free of code); the Powertools Tracer would add aws-xray-sdk to every
cold start for a segment per DynamoDB call, which is not worth it here.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol, TextIO

if TYPE_CHECKING:
    from afk.settings import Settings

REDACTED = "[REDACTED]"
_SECRET_HEADERS = r"authorization|x-api-key|x-goog-api-key|api[_-]key"
_PATTERNS = (
    # A header or field in any rendering: `Authorization: Bearer k`, `"x-api-key": "k"`,
    # `('x-goog-api-key', 'k')`, `(b'authorization', b'Bearer k')`, escaped JSON in JSON.
    re.compile(r"(?P<keep>(?:" + _SECRET_HEADERS + r""")\\?["']?\s*[:=,]\s*(?:b(?=["']))?\\?["']?"""
               r"""(?:(?:Bearer|Basic)\s+)?)(?!\[REDACTED\])[^\s"'\\,;&)}\]]+""",
               re.IGNORECASE),
    # A key in a query string (Gemini's `?key=`).
    re.compile(r"(?P<keep>[?&](?:key|api_key)=)(?!\[REDACTED\])[^&\s\"'#\\]+",
               re.IGNORECASE),
    # Keys by their shape, wherever they appear: ours, OpenAI's / Anthropic's, Google's.
    re.compile(r"(?P<keep>)\b(?:afk|sk)-[A-Za-z0-9_-]{16,}"),
    re.compile(r"(?P<keep>)\bAIza[0-9A-Za-z_-]{20,}"),
)


_secrets: set[str] = set()
_secret_pattern: re.Pattern[str] | None = None


def register_secret(value: str | None) -> None:
    """Redact `value` (a provider key the gateway holds) wherever it appears,
    whatever its shape. Short values are ignored: they would redact words."""
    global _secret_pattern
    if not value or len(value) < 8 or value in _secrets:
        return
    _secrets.add(value)
    _secret_pattern = re.compile("|".join(re.escape(v) for v in
                                          sorted(_secrets, key=len, reverse=True)))


def redact(text: str) -> str:
    if _secret_pattern is not None:
        text = _secret_pattern.sub(REDACTED, text)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group("keep") + REDACTED, text)
    return text


def _redacted_args(args: Any) -> Any:
    """A record's arguments with every key redacted, keeping their number and
    order (uvicorn's access formatter unpacks them)."""
    if isinstance(args, tuple):
        out: list[object] = []
        for arg in args:
            if isinstance(arg, (int, float, type(None))):
                out.append(arg)
            else:
                text = arg if isinstance(arg, str) else str(arg)
                cleaned = redact(text)
                out.append(arg if cleaned == text else cleaned)
        return tuple(out)
    if isinstance(args, dict):
        return {k: _redacted_args((v,))[0] for k, v in args.items()}
    return args


def _redact_record(record: logging.LogRecord) -> None:
    """Redact a record's message and arguments in place, keeping the arguments
    where that suffices; else the message is rendered and redacted whole."""
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: let logging report it, redacted
        record.msg, record.args = redact(str(record.msg)), None
        return
    if redact(message) == message:
        return
    if record.args:
        msg, args = redact(str(record.msg)), _redacted_args(record.args)
        try:
            rendered = msg % args
        except Exception:
            rendered = None
        if rendered is not None and redact(rendered) == rendered:
            record.msg, record.args = msg, args
            return
    record.msg, record.args = redact(message), None


# LogRecord's own attributes; anything else on a record is an `extra` field.
_RECORD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class RedactingFilter(logging.Filter):
    """Redacts the message, its arguments, string extras and the traceback of
    every record before any formatter sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_record(record)
        for name, value in list(vars(record).items()):
            if name not in _RECORD_ATTRS and isinstance(value, str):
                setattr(record, name, redact(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class RedactingFormatter(logging.Formatter):
    """Wraps a handler's formatter: the whole formatted line is redacted once more,
    so nothing a formatter adds (extras, a traceback, a prefix) carries a key out."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))


_factory_installed = False


def _install_record_factory() -> None:
    global _factory_installed
    if _factory_installed:
        return
    make = logging.getLogRecordFactory()

    def redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        _redact_record(record)
        return record

    logging.setLogRecordFactory(redacting_factory)
    _factory_installed = True


def install_redaction() -> None:
    """Redaction on every handler of every logger there is now (idempotent; run
    again whenever something may have replaced handlers, e.g. uvicorn)."""
    _install_record_factory()
    loggers = [logging.getLogger(), *(logger for logger in
                                      list(logging.root.manager.loggerDict.values())
                                      if isinstance(logger, logging.Logger))]
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(_ScopeFilter())
                handler.addFilter(RedactingFilter())
            if not isinstance(handler.formatter, RedactingFormatter) and \
                    not isinstance(handler, _JsonHandler):
                handler.setFormatter(RedactingFormatter(handler.formatter))


# ------------------------------------------------------------------ request scope
_scope: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "afk_request_scope", default=None)


@contextlib.contextmanager
def request_scope(request_id: str, **fields: Any) -> Iterator[dict[str, Any]]:
    """The fields every log record of this request carries. A mutable dict, so
    fields bound in tasks the request spawns (a streamed body) are seen here too."""
    scope = {"request_id": request_id, **fields}
    token = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(token)


def bind(**fields: Any) -> None:
    scope = _scope.get()
    if scope is not None:
        scope.update({k: v for k, v in fields.items() if v is not None})


def _route(default: str) -> str:
    """The matched route's path template (Starlette puts the route in the ASGI scope
    the middleware passed as `_asgi`), so settlement and request metrics agree."""
    asgi = (_scope.get() or {}).get("_asgi") or {}
    return getattr(asgi.get("route"), "path", None) or default


class _ScopeFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in (_scope.get() or {}).items():
            if not name.startswith("_") and not hasattr(record, name):
                setattr(record, name, value)
        return True


# ------------------------------------------------------------------ metrics
class _Metrics(Protocol):
    def add_dimension(self, name: str, value: str) -> None: ...
    def add_metric(self, name: str, unit: str, value: float) -> None: ...
    def flush_metrics(self, raise_on_empty_metrics: bool = False) -> None: ...


class _Telemetry:
    """Set by `configure`; None-valued fields mean "off" (the cheap default)."""

    namespace: str | None = None
    service: str = "afk"


_telemetry = _Telemetry()


def _metrics() -> _Metrics | None:
    if _telemetry.namespace is None:
        return None
    # Per flush and isolated (Metrics instances share one global buffer): a
    # request's metrics never mix with a concurrent request's.
    from aws_lambda_powertools.metrics import EphemeralMetrics

    return EphemeralMetrics(namespace=_telemetry.namespace, service=_telemetry.service)


def _flush(metrics: _Metrics, model: str | None, route: str,
           values: list[tuple[str, str, float]]) -> None:
    metrics.add_dimension("route", route)
    metrics.add_dimension("model", model or "none")
    for name, unit, value in values:
        metrics.add_metric(name=name, unit=unit, value=value)
    metrics.flush_metrics()
    # EMF is a print(): under uvicorn stdout is a pipe, block-buffered, and a frozen
    # container would hold the line back; push it out with its request.
    sys.stdout.flush()


def observe_request(route: str, status: int) -> None:
    metrics = _metrics()
    if metrics is None:
        return
    scope = _scope.get() or {}
    _flush(metrics, scope.get("model"), route, [
        ("Requests", "Count", 1),
        ("Errors", "Count", 1 if status >= 500 else 0),
        ("ClientErrors", "Count", 1 if 400 <= status < 500 else 0),
    ])


class Usage(Protocol):
    @property
    def input_tokens(self) -> int: ...

    @property
    def output_tokens(self) -> int: ...


def observe_settlement(model: str, route: str, usage: Usage, cost_pico: int,
                       upstream_ms: float) -> None:
    """`usage` is the settlement; its `uncovered` (the cost above the hold, which
    the account was not charged) must always be 0. When it is not, the error log
    and the UncoveredNanoUSD metric (dimension `service` only, so one alarm in
    template.yaml watches every route and model) tell the operator."""
    bind(model=model)
    uncovered = int(getattr(usage, "uncovered", 0) or 0)
    if uncovered > 0:
        logging.getLogger("afk.billing").error(
            "usage exceeded the hold: %d pico-USD of %s's cost on %s was not charged",
            uncovered, model, route)
    metrics = _metrics()
    if metrics is None:
        return
    _flush(metrics, model, _route(route), [
        ("InputTokens", "Count", usage.input_tokens),
        ("OutputTokens", "Count", usage.output_tokens),
        # An integer of nano-USD: a metric, not money, but still no float rounding.
        ("CostNanoUSD", "Count", cost_pico // 1000),
        ("UpstreamLatency", "Milliseconds", upstream_ms),
    ])
    if uncovered > 0:
        alarm = _metrics()
        assert alarm is not None
        alarm.add_metric(name="UncoveredNanoUSD", unit="Count", value=-(-uncovered // 1000))
        alarm.flush_metrics()
        sys.stdout.flush()


# ------------------------------------------------------------------ setup
def configure(settings: Settings) -> None:
    """Idempotent. Redaction everywhere; JSON logs and metrics on Lambda."""
    root = logging.getLogger()
    if settings.metrics_namespace:
        _telemetry.namespace, _telemetry.service = settings.metrics_namespace, settings.service
        if not any(isinstance(h, _JsonHandler) for h in root.handlers):
            # Replaces the Lambda runtime's plain-text handler (two outputs would
            # double every line and the CloudWatch bill).
            for handler in list(root.handlers):
                root.removeHandler(handler)
            root.addHandler(_JsonHandler(settings.service))
            root.setLevel(settings.log_level)
    for upstream in settings.upstreams.values():
        register_secret(upstream.api_key)  # the secret's keys register when it is resolved
    # uvicorn's own loggers do not propagate to the root: guard their handlers too.
    install_redaction()


class _JsonHandler(logging.StreamHandler[TextIO]):
    """Powertools' structured JSON (with the X-Ray trace id), redacted once more
    as a whole line so nothing a formatter adds can carry a key out."""

    def __init__(self, service: str) -> None:
        super().__init__(sys.stdout)
        from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

        class RedactingJsonFormatter(LambdaPowertoolsFormatter):
            def format(self, record: logging.LogRecord) -> str:
                return redact(super().format(record))

        self.setFormatter(RedactingJsonFormatter(service=service))

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout  # where print() (the EMF lines) goes too, even if swapped
        super().emit(record)
