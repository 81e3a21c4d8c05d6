"""ICE, STUN and TURN as sans-IO state machines with a Cython core."""

__version__ = "0.1.0"
