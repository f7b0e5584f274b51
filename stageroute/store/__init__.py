"""The statistics store (SPEC 9): per-window partial statistics that runs extend."""
