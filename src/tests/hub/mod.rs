//! Simulations of the hub core.
