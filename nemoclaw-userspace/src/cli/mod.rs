//! The `nemoclaw` command line.
