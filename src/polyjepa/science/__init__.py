"""Scientific data: solutions of partial differential equations, with their Lie symmetries as SSL views.

Import the parts from their modules (``polyjepa.science.spectral``, ``.symmetries``, ``.lie_ssl``); this
package does no work on import.
"""
