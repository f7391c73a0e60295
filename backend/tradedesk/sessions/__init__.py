"""Server-side browser sessions: the record, its stores (Redis, SQL) and the request dependencies."""
