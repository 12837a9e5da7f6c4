"""Example ``python`` step functions; ``beamctl dev up`` and ``make demo`` allow ``examples.*``."""
