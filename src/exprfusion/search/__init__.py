"""The Ray Tune search over dropout, width and depth, its trials and space, and the final training of the winner."""
