"""Finishing a transition offline: scan a route's stored objects and migrate them.

Between the app (the ``scan`` and ``migrate`` commands) and the data path's pure helpers
(stored-format detection, content types) and the translation engine. Talks to S3 with
botocore in worker threads; never imports the relay's server or the app.
"""
