//! The client's file operations beneath the mirror root are the crate's
//! [`crate::beneath`] (trace files and markers use them too).

pub use crate::beneath::*;
