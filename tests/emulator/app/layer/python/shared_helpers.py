"""A module that only the test layer provides."""

LAYER_MARK = "from-layer"
