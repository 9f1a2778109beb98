//! The DTP client: fetch a manifest, diff, download in parallel, apply in stages.
