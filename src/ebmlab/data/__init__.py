"""Data: 2-D toy sets (with exact densities where known), file input/output, encodings."""
from .toy import toy, toy_names, toy_density, toy_density_names, toy_bounds
from .files import DATA_EXTENSIONS, load_data, save_samples, resolve_data
from .lattice import ising_dataset
from .gray_code import decode_gray, encode_gray, gray_toy
from .spec import parse_spec
from .images import IMAGE_SETS, image_shape, load_digits, load_images, load_mnist
