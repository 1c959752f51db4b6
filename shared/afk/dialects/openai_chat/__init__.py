"""OpenAI Chat Completions (`POST /v1/chat/completions`), both directions.

The codec's surface (`afk.dialects.base.Codec`). The layout every dialect package has:
`wire` (names, stop reasons), `messages` (messages <-> IR messages), `requests`,
`responses` (bodies and usage), `decoder` / `encoder` (the stream state machines),
`errors`, `forwarding` (what a passthrough body may carry).
"""

from afk.dialects.openai_chat.decoder import *
from afk.dialects.openai_chat.encoder import *
from afk.dialects.openai_chat.errors import *
from afk.dialects.openai_chat.forwarding import *
from afk.dialects.openai_chat.requests import *
from afk.dialects.openai_chat.responses import *
from afk.dialects.openai_chat.wire import *
