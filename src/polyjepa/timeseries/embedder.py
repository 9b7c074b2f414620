"""TimeSeriesEmbedder: a scikit-learn transformer that pretrains a series JEPA on X and embeds series."""
