"""A Valohai-API-compatible server that runs Valohai steps on this machine.

Used as the default target of the `local` stack, by tests and by the demo, because there is no Valohai
account here. See docs/local-backend.md.
"""

__version__ = "0.1.0"
