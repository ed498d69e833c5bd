"""AI judges: rubric and parsing (``rubric``), writes (``services``), reads (``selectors``),
judge-human agreement (``agreement``). Models live in ``annotate.models_judges``."""
