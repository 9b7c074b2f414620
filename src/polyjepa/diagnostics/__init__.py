"""Label-free representation diagnostics."""
from .lidar import lidar
from .rankme import rankme
from .spectrum import collapse_alarm, covariance_spectrum, spectrum_summary

__all__ = ["collapse_alarm", "covariance_spectrum", "lidar", "rankme", "spectrum_summary"]
