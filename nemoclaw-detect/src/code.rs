//! Proprietary code fingerprints (placeholder).
