//! The storage conformance suite: written once, run against every backend.
