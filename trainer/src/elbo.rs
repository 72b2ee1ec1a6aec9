//! The likelihood bound of a DSM model (MATH.md §7): work in progress.
