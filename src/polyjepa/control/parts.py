"""Control parts for recipes: tasks (``env``), demonstrations, logged transitions, judging episodes, the
CEM planner, the message link, and the ACT-JEPA, latent-world-model and remote-control methods with their
own train-and-run entries."""
import functools

from .actjepa import ACTJEPA
from .envs import TASKS, make_env
from .pipeline import Demos, Rollouts, Transitions, run_actjepa, run_planner
from .planner import CEMPlanner
from .remote import WindowJEPA
from .remote_run import ChannelSpec, ControllerSpec, run_remote
from .worldmodel import LatentDynamics

PARTS = {
    "env": {name: (functools.partial(make_env, name), set()) for name in TASKS},
    "demos": {"expert": (Demos, set())},
    "transitions": {"logged": (Transitions, set())},
    "rollouts": {"episodes": (Rollouts, set())},
    "planner": {"cem": (CEMPlanner, {"action_dim"})},
    "channel": {"bitflip": (ChannelSpec, set())},
    "controller": {"mlp": (ControllerSpec, set())},
    "method": {"act_jepa": (ACTJEPA, {"obs_dim", "action_dim"}),
               "latent_dynamics": (LatentDynamics, {"obs_dim", "action_dim"}),
               "tsjepa_remote": (WindowJEPA, {"obs_dim", "action_dim"})},
}
DEFAULTS = {"env": "cartpole", "demos": "expert", "transitions": "logged", "rollouts": "episodes", "planner": "cem",
            "channel": "bitflip", "controller": "mlp"}
RUNNERS = {"act_jepa": run_actjepa, "latent_dynamics": run_planner, "tsjepa_remote": run_remote}
