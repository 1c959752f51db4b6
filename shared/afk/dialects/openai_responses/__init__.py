"""OpenAI Responses (`POST /v1/responses`, `GET /v1/responses/{id}/input_items`),
both directions.

The codec's surface (`afk.dialects.base.Codec`), plus the item-level helpers the
pipeline needs to keep conversation state. The layout every dialect package has:

* `wire`: names, deterministic item ids, tool-name flattening, signatures,
  custom-tool input, usage and status <-> stop reason;
* `messages`: input items <-> IR messages (`parse_items`, `render_items`);
* `requests`: request bodies, `check_translatable`, the passthrough patch,
  the upstream body, `echo_fields`;
* `responses`: response objects both ways, output items, the input-items list;
* `decoder` / `encoder`: the stream state machines;
* `errors`: error bodies and in-stream failures;
* `forwarding`: what a passthrough body may carry (priced, or refused);
* `search`: hosted web search.
"""

from afk.dialects.openai_responses.decoder import *
from afk.dialects.openai_responses.encoder import *
from afk.dialects.openai_responses.errors import *
from afk.dialects.openai_responses.forwarding import *
from afk.dialects.openai_responses.messages import *
from afk.dialects.openai_responses.requests import *
from afk.dialects.openai_responses.responses import *
from afk.dialects.openai_responses.wire import *
