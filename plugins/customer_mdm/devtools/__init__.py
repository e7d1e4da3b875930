"""Developer tooling: a real local PostgreSQL server for tests and smoke checks."""
