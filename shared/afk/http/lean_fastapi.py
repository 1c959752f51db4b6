"""Imported before FastAPI is (`create_app` does, for the account API): what cuts what FastAPI's import and route building cost the
account function's cold start, without changing what the API answers
(bench/LEVERS.md has the profiles).

* `without_pydantic_v1()`, around building the routes. For every parameter of
  every route, FastAPI asks whether its annotation is a pydantic v1 model (only
  to refuse one), by importing `pydantic.v1` (the whole v1 package, ~20-30 ms)
  and asking `issubclass`; its own answer when that import fails is "no"
  (`fastapi._compat.shared`). No model here is v1, so while the routes are built
  the import is refused; after, `pydantic.v1` imports as ever (other libraries
  in a test run use it). A process that imported it before keeps it.
* Process-wide (from this module's import): pydantic models build their validators on first use, not at class creation
  (`defer_build`, inherited from `BaseModel.model_config` by every model defined
  after this). FastAPI defines ~40 models of the OpenAPI document itself, which
  only `/v1/account/openapi.json` uses; a body model builds on its first body.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from pydantic import BaseModel

BaseModel.model_config["defer_build"] = True


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
