"""What cuts FastAPI's import and route building out of the account function's cold
start, without changing what the API answers (bench/LEVERS.md has the profiles).
`create_app` imports this module before anything imports FastAPI.

* FastAPI is imported here, with pydantic's `defer_build` on while it is: the ~40
  models FastAPI defines for the OpenAPI document build their validators on
  first use (only `/v1/account/openapi.json` uses them) instead of at import.
  The default is restored after, so every model and route parameter defined
  later (our bodies, FastAPI's per-route adapters) builds as before: deferring
  those too makes pydantic warn about the routes' parameter aliases when it
  builds them late.
* `without_pydantic_v1()`, around building the routes. For every parameter of
  every route, FastAPI asks whether its annotation is a pydantic v1 model (only
  to refuse one), by importing `pydantic.v1` (the whole v1 package, ~20-30 ms)
  and asking `issubclass`; its own answer when that import fails is "no"
  (`fastapi._compat.shared`). No model here is v1, so while the routes are built
  the import is refused; after, `pydantic.v1` imports as ever (other libraries
  in a test run use it). A process that imported it before keeps it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from pydantic import BaseModel


def _import_fastapi_deferred() -> None:
    if "fastapi" in sys.modules:
        return
    defaults = BaseModel.model_config
    before = defaults.get("defer_build")
    defaults["defer_build"] = True
    try:
        import fastapi  # noqa: F401 - its OpenAPI models are defined now, deferred
    finally:
        if before is None:
            del defaults["defer_build"]
        else:
            defaults["defer_build"] = before


_import_fastapi_deferred()


@contextlib.contextmanager
def without_pydantic_v1() -> Iterator[None]:
    if "pydantic.v1" in sys.modules:
        yield
        return
    sys.modules["pydantic.v1"] = None  # type: ignore[assignment]  # the import fails
    try:
        yield
    finally:
        if sys.modules.get("pydantic.v1", ...) is None:
            del sys.modules["pydantic.v1"]
