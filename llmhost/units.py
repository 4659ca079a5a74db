"""Byte units: the one definition that configuration, estimates, the lifecycle and the
status output share (none of them should import a hardware module for a constant)."""

GIB = 1024**3
MIB = 1024**2
