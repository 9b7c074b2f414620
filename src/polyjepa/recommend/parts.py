"""Registry entries of two-tower recommendation: the ``interactions`` data loader and the ``two_tower_rec``
method, which ``polyjepa pretrain`` runs through :func:`~polyjepa.recommend.run.run_recommend`."""
from .run import prepare_interactions, run_recommend, two_tower_rec

PARTS = {
    "method": {"two_tower_rec": (two_tower_rec, set())},
    "data": {"interactions": (prepare_interactions, {"source"})},
}
RUNNERS = {"two_tower_rec": run_recommend}
