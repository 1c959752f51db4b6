#!/bin/sh
# Started by the Lambda Web Adapter (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap), outside
# the Python runtime bootstrap, so nothing has put the layers on sys.path yet.
export PYTHONPATH=/opt/python:$LAMBDA_TASK_ROOT
# stdout is a pipe here: unbuffered, so log and metric lines leave with their request.
export PYTHONUNBUFFERED=1
# uvicorn serving app:app on 127.0.0.1:$PORT, started without uvicorn's command line
# (its options and why: afk/serve.py; bench/LEVERS.md).
exec python -m afk.serve
