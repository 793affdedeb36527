"""Input data: built-in 2-D generators and loaders for data files."""
