"""rlkernel-example: a template plugin for rlkernel."""
