//! The loggers the runtime ships (being written).
