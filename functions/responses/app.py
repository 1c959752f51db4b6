"""ASGI app for the responses function, served by uvicorn (see run.sh).

Streaming: the Lambda Web Adapter layer runs run.sh, waits for uvicorn to accept
connections, then relays each invocation to it in response_stream mode.
"""

from afk.http.apps import create_app

app = create_app("responses")
