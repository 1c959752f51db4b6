#!/bin/sh
# Started by the Lambda Web Adapter (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap), outside
# the Python runtime bootstrap, so nothing has put the layers on sys.path yet.
export PYTHONPATH=/opt/python:$LAMBDA_TASK_ROOT
# stdout is a pipe here: unbuffered, so log and metric lines leave with their request.
export PYTHONUNBUFFERED=1
exec python -m uvicorn --host 127.0.0.1 --port "$PORT" --no-access-log app:app
