//! Simulations of the client session and the engine core.
