//! `fixnet`: the host command-line tool.
fn main() {}
