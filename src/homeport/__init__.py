"""homeport: turn an idle Mac Mini (or a Debian box) into the remote Docker host of a developer far away."""

__version__ = "0.1.0"
