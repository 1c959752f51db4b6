"""The HTTP edge: app factory, dialect-shaped errors, streaming responses."""
