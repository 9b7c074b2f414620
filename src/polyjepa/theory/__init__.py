"""Theory made runnable: closed forms and learning-time predictions for joint-embedding training.

- :mod:`.stepwise`: the linearised Barlow Twins model (Simon et al., ICML 2023): the contrastive
  operator of a set of positive pairs, its eigenmodes, the closed-form end point and the step times.
- :mod:`.deep_linear`: deep linear JEPA vs MAE (Littwin et al., NeurIPS 2024): per-feature ODEs, their
  closed-form solutions and learning times from the covariance lambda and regression coefficient rho.
- :mod:`.overlay`: the step-time prediction laid over a training run's recorded spectrum.

Pure functions on arrays (numpy; torch only where a gradient-descent check needs autograd).
"""
from .deep_linear import (DeepLinearRun, feature_rhs, final_gain, gain_crossing_times, jepa_time, leading_time,
                          learning_time, mae_time, solve_gains, train_deep_linear)
from .overlay import theory_overlay
from .stepwise import (LinearBarlowRun, barlow_linear_loss, crossing_times, effective_init_power, final_embedding,
                       init_power,
                       kernel_modes, logistic_eigenvalues, pair_correlation, principal_angles, step_times,
                       stepwise_modes, train_linear_barlow)

__all__ = ["DeepLinearRun", "LinearBarlowRun", "barlow_linear_loss", "crossing_times", "effective_init_power", "feature_rhs",
           "final_embedding", "final_gain", "gain_crossing_times", "init_power", "jepa_time", "kernel_modes",
           "leading_time", "learning_time", "logistic_eigenvalues", "mae_time", "pair_correlation",
           "principal_angles", "solve_gains", "step_times", "stepwise_modes", "theory_overlay",
           "train_deep_linear", "train_linear_barlow"]
