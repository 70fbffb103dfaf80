//! The cloud side of an agent. Clouds ignore ARP, so moving an address means telling the cloud
//! API; agents do that only through the [`Cloud`] trait. `none` (a plain L2 network) is
//! implemented here; AWS and OCI providers plug in behind the same trait.

use std::net::IpAddr;
use std::path::Path;

use crate::error::{Error, Result};
use crate::host::Link;

/// Which cloud a node runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloudKind {
    None,
    Aws,
    Oci,
}

impl CloudKind {
    pub fn describe(self) -> &'static str {
        match self {
            CloudKind::None => "no cloud (plain L2 network)",
            CloudKind::Aws => "Amazon EC2",
            CloudKind::Oci => "Oracle Cloud Infrastructure",
        }
    }
}

/// Recognise the cloud from DMI data, which both clouds fill in on every instance shape:
/// EC2 (Xen and Nitro) puts "Amazon EC2" in sys_vendor or an `i-…` board asset tag; OCI puts
/// "OracleCloud.com" in the chassis asset tag.
pub fn detect(dmi_dir: &Path) -> CloudKind {
    let read = |f: &str| {
        std::fs::read_to_string(dmi_dir.join(f))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let vendor = read("sys_vendor");
    let bios = read("bios_version");
    let board_tag = read("board_asset_tag");
    let chassis_tag = read("chassis_asset_tag");
    if chassis_tag == "OracleCloud.com" {
        CloudKind::Oci
    } else if vendor == "Amazon EC2" || bios.contains("amazon") || board_tag.starts_with("i-") {
        CloudKind::Aws
    } else {
        CloudKind::None
    }
}

/// Who holds a secondary address in the cloud's view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// Our interface.
    Us,
    /// Another interface (its cloud id).
    Other(String),
    /// Nobody.
    Nobody,
}

/// The cloud operations the vip agent needs.
pub trait Cloud {
    fn kind(&self) -> CloudKind;
    /// Make the cloud deliver `ip` to `nic` (taking it from whoever holds it).
    fn claim(&self, ip: IpAddr, nic: &Link) -> Result<()>;
    /// Give `ip` back, but only if `nic` still holds it.
    fn release(&self, ip: IpAddr, nic: &Link) -> Result<()>;
    fn owner(&self, ip: IpAddr, nic: &Link) -> Result<Owner>;
}

/// A plain L2 network: the OS address and a gratuitous ARP are all it takes.
pub struct NoCloud;

impl Cloud for NoCloud {
    fn kind(&self) -> CloudKind {
        CloudKind::None
    }
    fn claim(&self, _: IpAddr, _: &Link) -> Result<()> {
        Ok(())
    }
    fn release(&self, _: IpAddr, _: &Link) -> Result<()> {
        Ok(())
    }
    fn owner(&self, _: IpAddr, _: &Link) -> Result<Owner> {
        Ok(Owner::Us)
    }
}

/// The provider for a cloud. AWS and OCI are not in this build yet: say so plainly rather than
/// configure an address nobody outside this node could reach.
pub fn provider(kind: CloudKind) -> Result<Box<dyn Cloud>> {
    match kind {
        CloudKind::None => Ok(Box::new(NoCloud)),
        other => Err(Error::not_installed(format!(
            "this build of cloudha cannot move addresses on {} yet",
            other.describe()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dmi(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (f, v) in files {
            std::fs::write(d.path().join(f), format!("{v}\n")).unwrap();
        }
        d
    }

    #[test]
    fn detection() {
        assert_eq!(
            detect(dmi(&[("sys_vendor", "Amazon EC2")]).path()),
            CloudKind::Aws
        );
        assert_eq!(
            detect(dmi(&[("board_asset_tag", "i-0123456789abcdef0")]).path()),
            CloudKind::Aws
        );
        assert_eq!(
            detect(dmi(&[("chassis_asset_tag", "OracleCloud.com")]).path()),
            CloudKind::Oci
        );
        assert_eq!(
            detect(dmi(&[("sys_vendor", "QEMU")]).path()),
            CloudKind::None
        );
        assert_eq!(detect(Path::new("/nonexistent")), CloudKind::None);
    }
}
