"""The Hydra configs of n2react (conf/ in a checkout), shipped as package data."""
