"""Audio: a torch log-mel front end, the ``audio`` data loader and A-JEPA's masking curriculum."""
