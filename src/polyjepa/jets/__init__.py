"""Particle jets: padded particle sets, exclusive-kT subjets, N-subjettiness, J-JEPA, Pythia/FastJet data."""
