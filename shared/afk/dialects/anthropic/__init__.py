"""Anthropic Messages (`POST /v1/messages`, `/v1/messages/count_tokens`), both
directions. The codec's surface (`afk.dialects.base.Codec`), by the layout every
dialect package has (README of afk/dialects):

* `wire`: names, tool ids and inputs, stop reasons, signatures;
* `messages`: system prompt + messages <-> IR messages;
* `requests`: request bodies both ways, the passthrough patch, count_tokens;
* `responses`: response bodies, content blocks, usage;
* `decoder` / `encoder`: the stream state machines;
* `errors`: error bodies both ways, in-stream errors;
* `forwarding`: what a passthrough body may carry (priced, or refused);
* `search` (hosted web search) and `models` (the model-list shape).
"""

from afk.dialects.anthropic.decoder import *
from afk.dialects.anthropic.encoder import *
from afk.dialects.anthropic.errors import *
from afk.dialects.anthropic.forwarding import *
from afk.dialects.anthropic.requests import *
from afk.dialects.anthropic.responses import *
from afk.dialects.anthropic.wire import *
