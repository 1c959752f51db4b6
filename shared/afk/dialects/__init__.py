"""Wire-format codecs, one module per dialect, the same names in each:

parse_request / render_request, parse_response / render_response,
StreamDecoder / StreamEncoder, render_error / render_stream_error.

Dialects import the IR, never each other.
"""
