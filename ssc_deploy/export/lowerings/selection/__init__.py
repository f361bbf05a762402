"""Which lowering each target and precision gets: measured on this host (``fast``), counted on an ARM
profile (``--for``), searched (``auto``), and the per-machine cache of those measurements."""
