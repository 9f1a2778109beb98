//! The home as the service reads it again on reload.
//!
//! A root service's home is often root's (`/root/dxync`, as KRFOSS's guide
//! has it), below a folder only root may enter; once the service runs as
//! `nobody` it could not reach its own configuration. So a service about to
//! drop root opens its home (`O_PATH`) and reads the configuration through
//! `/proc/self/fd/N` afterwards: a process may always follow its own
//! descriptors, so only the home's own permissions and its files' apply,
//! not those of the folders above it.

use std::fmt;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use super::config::{Loaded, Loader};
use crate::diag::Diagnostic;

/// Where a reload reads the configuration, and what reads it.
pub struct HeldHome {
    /// The home as named (for messages).
    real: PathBuf,
    /// The path reads go through: `real`, or `/proc/self/fd/N` of `_fd`.
    view: PathBuf,
    load: Loader,
    _fd: Option<OwnedFd>,
}

impl fmt::Debug for HeldHome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeldHome")
            .field("real", &self.real)
            .field("view", &self.view)
            .field("fd", &self._fd)
            .finish_non_exhaustive()
    }
}

impl HeldHome {
    /// The home read by its path (a service that stays who it is).
    pub fn by_path(home: &Path, load: Loader) -> HeldHome {
        HeldHome {
            real: home.to_path_buf(),
            view: home.to_path_buf(),
            load,
            _fd: None,
        }
    }

    /// The home held open, for a service about to drop root; by its path
    /// when it cannot be opened (the reload then says why it cannot read).
    pub fn open(home: &Path, load: Loader) -> HeldHome {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        match rustix::fs::open(home, flags, Mode::empty()) {
            Ok(fd) => HeldHome {
                real: home.to_path_buf(),
                view: PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())),
                load,
                _fd: Some(fd),
            },
            Err(_) => Self::by_path(home, load),
        }
    }

    /// The configuration, read by the [`Loader`] through the held home, the
    /// paths in its messages those of the home as named.
    pub fn load(&self) -> Result<Loaded, Vec<Diagnostic>> {
        match (self.load)(&self.view) {
            Ok(mut loaded) => {
                self.name_files(&mut loaded.warnings);
                Ok(loaded)
            }
            Err(mut diags) => {
                self.name_files(&mut diags);
                Err(diags)
            }
        }
    }

    fn name_files(&self, diags: &mut [Diagnostic]) {
        for d in diags {
            if let Ok(rest) = d.file.strip_prefix(&self.view) {
                d.file = self.real.join(rest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtp::server::config::{self, Files, tests::settings};
    use std::sync::Arc;

    #[test]
    fn reads_through_the_descriptor_and_names_the_real_files() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join("dtp")).unwrap();
        std::fs::write(home.join("dtp/firewall.conf"), "allow=nonsense\n").unwrap();
        // The host files in HOME/dtp/, as dsync's home has them.
        let load: Loader = Arc::new(|home: &Path| {
            config::load(
                &Files::in_dir(&home.join("dtp")),
                settings(None),
                Vec::new(),
            )
        });
        let held = HeldHome::open(&home, load);
        assert!(held.view.starts_with("/proc/self/fd/"), "{held:?}");
        let diags = held.load().unwrap_err();
        let files: Vec<&Path> = diags.iter().map(|d| d.file.as_path()).collect();
        assert!(
            files.contains(&home.join("dtp/firewall.conf").as_path()),
            "{diags:#?}"
        );
        // Moved away: still the home it opened.
        let moved = dir.path().join("moved");
        std::fs::rename(&home, &moved).unwrap();
        std::fs::write(moved.join("dtp/firewall.conf"), "allow=127.0.0.1\n").unwrap();
        let loaded = held.load().unwrap();
        assert!(!loaded.config.firewall.is_open());
    }
}
