"""`afk dev`: every function app in one process, against an embedded DynamoDB."""
