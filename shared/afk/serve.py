"""`python -m afk.serve`: how run.sh starts a Web Adapter function's app (`app:app`
in the function's folder) under uvicorn on 127.0.0.1:$PORT.

The same server `python -m uvicorn` would start (uvicorn's `Config` and `Server`,
as `uvicorn.run` builds them), minus what only uvicorn's command line needs:
uvicorn's package `__init__` imports `uvicorn.main` for `uvicorn.run`, which
brings click, and the reload and multiprocess supervisors (multiprocessing),
~36 modules and ~10-15 ms of a cold start's CPU (bench/LEVERS.md). Here the
package is registered without running its `__init__`, and gets the two names its
own modules import from it (`uvicorn.lifespan.on` does `from uvicorn import
Config`). tests/deploy/test_lambda_built.py starts every built run.sh this way.

Options: no access log (the gateway logs each call itself), `ws="none"` ("auto"
would import the websockets package), and the C implementations, named rather than
probed: `http="httptools"` (llhttp; the upstream client imports httptools anyway,
and h11 is not imported at all) and `loop="uvloop"` (libuv). Against h11 and
asyncio's loop they cost ~0.35-0.7 ms less CPU per call and ~1 ms less at a cold
start (httptools ~6 ms less to import than h11, uvloop ~4.5 ms more for its import
and loop): bench/LEVERS.md, "the server's HTTP protocol and event loop".
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from uvicorn import Server

def server(app: str, port: int) -> Server:
    """uvicorn's server for `app` ("module:attribute"), not started."""
    if "uvicorn" not in sys.modules:
        _bare_package()
    from uvicorn.config import Config
    from uvicorn.server import Server

    return Server(Config(app, host="127.0.0.1", port=port, access_log=False, ws="none",
                         http="httptools", loop="uvloop"))


def _bare_package() -> None:
    """The `uvicorn` package without its `__init__`, with the names its modules
    import from it."""
    spec = importlib.util.find_spec("uvicorn")
    assert spec is not None, "uvicorn is not installed"
    sys.modules["uvicorn"] = package = importlib.util.module_from_spec(spec)
    from uvicorn._version import __version__
    from uvicorn.config import Config
    from uvicorn.server import Server

    vars(package).update(__version__=__version__, Config=Config, Server=Server)


if __name__ == "__main__":
    server("app:app", int(os.environ["PORT"])).run()
