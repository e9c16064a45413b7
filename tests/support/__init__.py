"""Test-only code that stands in for parts of production: entry points with test hooks, clients
kept only for tests. Never copied into the service image (the Dockerfile copies no tests/)."""
