"""The submitit SLURM launcher as n2react uses it (conf/hydra/launcher/slurm.yaml)."""
