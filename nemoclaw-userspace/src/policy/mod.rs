//! The "spec" stage: parse, validate and compile policies into plain data. No kernel needed.

pub mod compiled;
