//! STUB (helper-2).
