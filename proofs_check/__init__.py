"""The claim registry and the ``proofs-check`` command."""
