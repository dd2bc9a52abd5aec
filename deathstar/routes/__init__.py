"""The API's routers: ``ops`` for probes and build info, ``targets`` for the resource."""
