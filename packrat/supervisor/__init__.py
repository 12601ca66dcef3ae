"""The ``serve`` role: starts the coordinator and the front ends, and keeps them running."""
