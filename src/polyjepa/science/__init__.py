"""Scientific data: PDE solutions with Lie-symmetry views (and 3-D volumes).

Import the parts from their modules (``polyjepa.science.spectral``, ``.symmetries``, ``.lie_ssl``); this
package does no work on import.
"""
