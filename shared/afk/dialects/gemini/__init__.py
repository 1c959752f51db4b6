"""Gemini generateContent (`POST /{v}/models/{m}:generateContent` and
`:streamGenerateContent`), both directions.

The codec's surface (`afk.dialects.base.Codec`). Callers mix camelCase and proto
snake_case keys at any depth (google-genai does); bodies are normalised once on
entry (`keys`), and everything the codec emits is camelCase. The layout every
dialect package has:

* `wire`: names;
* `messages`: systemInstruction + contents <-> IR messages, call/response pairing;
* `requests`: request bodies, the passthrough patch, `check_translatable`, countTokens;
* `responses`: response bodies, usage, finish reasons;
* `decoder` / `encoder`: the stream state machines;
* `errors`: error bodies, both ways;
* `forwarding`: what a passthrough body may carry (priced, or refused);
* `search` (Google Search grounding) and `models` (the model-list shape);
* and Gemini's own: `keys` (key spelling), `parts` (content parts <-> IR blocks).
"""

from afk.dialects.gemini.decoder import *
from afk.dialects.gemini.encoder import *
from afk.dialects.gemini.errors import *
from afk.dialects.gemini.forwarding import *
from afk.dialects.gemini.keys import *
from afk.dialects.gemini.models import *
from afk.dialects.gemini.parts import *
from afk.dialects.gemini.requests import *
from afk.dialects.gemini.responses import *
from afk.dialects.gemini.wire import *
