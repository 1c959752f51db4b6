"""The model catalog: what each model is, who serves it, and what it costs.

Capabilities are data: nothing else in the package sniffs model names.
`model.py` holds the types and the lookup; `schema.py` reads and validates the
catalog file.
"""

from afk.catalog.model import (
    Catalog,
    CatalogError,
    ImageRule,
    LongContext,
    Model,
    Prices,
    WebSearchSpec,
)

__all__ = ["Catalog", "CatalogError", "ImageRule", "LongContext", "Model", "Prices",
           "WebSearchSpec"]
