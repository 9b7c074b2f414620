"""Control parts for recipes: tasks (``env``), demonstrations, logged transitions, judging episodes, the
CEM planner, and the ACT-JEPA and latent-world-model methods with their own train-and-run entries."""
import functools

from .actjepa import ACTJEPA
from .envs import TASKS, make_env
from .pipeline import Demos, Rollouts, Transitions, run_actjepa, run_planner
from .planner import CEMPlanner
from .worldmodel import LatentDynamics

PARTS = {
    "env": {name: (functools.partial(make_env, name), set()) for name in TASKS},
    "demos": {"expert": (Demos, set())},
    "transitions": {"logged": (Transitions, set())},
    "rollouts": {"episodes": (Rollouts, set())},
    "planner": {"cem": (CEMPlanner, {"action_dim"})},
    "method": {"act_jepa": (ACTJEPA, {"obs_dim", "action_dim"}),
               "latent_dynamics": (LatentDynamics, {"obs_dim", "action_dim"})},
}
DEFAULTS = {"env": "cartpole", "demos": "expert", "transitions": "logged", "rollouts": "episodes", "planner": "cem"}
RUNNERS = {"act_jepa": run_actjepa, "latent_dynamics": run_planner}
