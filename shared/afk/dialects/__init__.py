"""Wire-format codecs: one package per dialect callers speak (openai_chat,
openai_responses, anthropic, gemini), each an `afk.dialects.base.Codec` (checked by
mypy), each with the same layout: `wire`, `messages`, `requests`, `responses`,
`decoder`, `encoder`, `errors`, `forwarding` (and `search`, `models` where the
dialect has them). A package's surface is its modules' `__all__`.

Dialects import the IR and the dialect-neutral modules here (`base`, `jsonwire`,
`allowlist`, `openai_errors`, `shapes`), never each other.
"""
