"""Lambda entry point for the account function: the shared app behind Mangum (buffered)."""

from mangum import Mangum

from afk.http.apps import create_app

handler = Mangum(create_app("account"), lifespan="off")
