"""Thin HTTP routers; the work happens in the lifecycle manager and the backends."""
