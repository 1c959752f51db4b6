#!/bin/sh
# Started by the Lambda Web Adapter (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap), outside
# the Python runtime bootstrap, so nothing has put the layers on sys.path yet.
export PYTHONPATH=/opt/python:$LAMBDA_TASK_ROOT
# stdout is a pipe here: unbuffered, so log and metric lines leave with their request.
export PYTHONUNBUFFERED=1
# --ws none, --http h11, --loop asyncio: nothing imported or probed that a call does not
# use (uvicorn's "auto" imports the websockets package; bench/LEVERS.md).
exec python -m uvicorn --host 127.0.0.1 --port "$PORT" --no-access-log --ws none --http h11 \
    --loop asyncio app:app
