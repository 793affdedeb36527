"""What the command line declares from the analyses: the defaults it shows in --help and the names of
the options it reads. Kept in a module that imports nothing, so that `splinetool --help` and a usage
error answer without loading torch; each analysis module imports its own from here."""

# condition
DEFAULT_MAX_DENSE = 3000  # largest side of a Gram matrix decomposed exactly (72 MB in float64)
DEFAULT_K = 20
DEFAULT_LANCZOS_STEPS = 300
DEFAULT_BLOCK_POINTS = 256

# bn-density
DEFAULT_GRID = 256
DEFAULT_BIAS_STD = 1.0
DEFAULT_RELATIVE_DELTA = 0.05  # δ as a share of the view's larger side
DEFAULT_MAX_REGIONS = 1_000_000

# local-complexity
DEFAULT_DIRECTIONS = 25  # 2P = 50 vertices, as the published MLP experiments
DEFAULT_RELATIVE_RADIUS = 0.05  # r = 0.05 × the RMS distance of the data points to their mean
DEFAULT_MAX_INCREASE = 0.05  # of a gate's --baseline

# planes
PLANE_LISTS = ("anchors_list", "anchor_index_list")  # the options that give many planes

# slice over a trajectory (analyses/tile_placement.py)
DEFAULT_PLACEMENT_BINS = 20  # distance bands of width (the domain's diameter) / 20
DEFAULT_PLACEMENT_RELATIVE_DELTA = 0.02  # δ as a share of the domain's diameter
