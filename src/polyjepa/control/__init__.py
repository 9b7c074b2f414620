"""Control in gymnasium's classic-control simulators: physics experts, ACT-JEPA policies, a latent world
model planned with CEM. Needs the ``control`` extra (gymnasium) only when an environment is made."""
from .actjepa import ACTJEPA, ChunkController
from .envs import ControlEnv, make_env
from .experts import CartPoleExpert, PendulumExpert, lqr_gain
from .planner import CEMPlanner
from .rollout import record_demonstrations, run_episodes
from .worldmodel import LatentDynamics, PlanningController

__all__ = ["ACTJEPA", "CEMPlanner", "CartPoleExpert", "ChunkController", "ControlEnv", "LatentDynamics",
           "PendulumExpert", "PlanningController", "lqr_gain", "make_env", "record_demonstrations", "run_episodes"]
