"""Science parts for recipes: seeded PDE solutions (``pde``), their Lie-symmetry views (``symmetries``) and the
VICReg method with its own solve-train-regress entry."""
from .lie_augment import LieAugment
from .lie_ssl import LieVICReg, run_lie_ssl
from .pde_data import PDEData

PARTS = {
    "pde": {"solutions": (PDEData, set())},
    "symmetries": {"lie": (LieAugment, set())},
    "method": {"lie_vicreg": (LieVICReg, set())},
}
DEFAULTS = {"pde": "solutions", "symmetries": "lie"}
RUNNERS = {"lie_vicreg": run_lie_ssl}
