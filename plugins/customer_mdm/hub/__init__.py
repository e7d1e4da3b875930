"""The hub: the platform's HTTP service (``mdm serve``).

``app``      the FastAPI application factory and the error shape of the contract
``api``      the ``/v1`` routes (match, lookup, customer reads, self-service changes, privacy)
``auth``     API tokens (stored hashed), scopes, the per-token rate limit
``store``    where the server writes: SQLite under ``$MDM_HOME/hub`` (DuckDB) or schema ``hub``
             (PostgreSQL): tokens, idempotency keys, intake, the access log
``serving``  the read side: schema ``serving`` rebuilt at publish; on DuckDB an immutable
             snapshot file the server swaps in without a restart
``intake``   self-service changes and erasure requests from the store into the pipeline's feeds
``cli``      ``mdm serve``, ``mdm api-token``, ``mdm export reminders``, ``mdm privacy export``

See docs/hub.md.
"""
