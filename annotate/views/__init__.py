"""The annotate app's pages, one module per audience: ``labeling`` (the labeler's workspace, the
home page and the guidelines), ``manage`` (the manager's project pages), ``reports`` (agreement
reports; their SVG chart geometry is in ``charts``). Access is checked by ``core.access``."""
