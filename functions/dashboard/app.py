"""Lambda entry point for the dashboard function: the shared app behind Mangum (buffered)."""

from mangum import Mangum

from afk.http.apps import create_app

handler = Mangum(create_app("dashboard"), lifespan="off")
