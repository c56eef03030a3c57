"""Hydra plugins shipped with n2react."""
