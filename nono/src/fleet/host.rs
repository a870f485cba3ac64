//! Who pushed a session: the host identity (`/etc/machine-id` and the host
//! name) and the stable UUID a session gets from it, so that pushing the
//! same session twice finds the first copy.

use uuid::Uuid;

use super::FleetError;
use crate::store::Session;

/// A host as the fleet knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    /// `/etc/machine-id`, or `NONO_HOST_ID` (for tests and for hosts
    /// without a machine id, such as some containers).
    pub id: String,
    /// The host name, or `NONO_HOSTNAME`.
    pub name: String,
}

/// Namespace of session UUIDs (v5): a fixed random UUID.
const SESSION_NAMESPACE: Uuid = Uuid::from_u128(0x6e6f_6e6f_9c1e_4b5a_8f27_41d3_a0c2_e915);

impl Host {
    /// This host.
    pub fn this() -> Result<Host, FleetError> {
        let var = |k: &str| std::env::var(k).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let id = if let Some(id) = var("NONO_HOST_ID") {
            id
        } else {
            let path = "/etc/machine-id";
            std::fs::read_to_string(path)
                .map_err(|source| FleetError::HostId { path: path.to_owned(), source })?
                .trim()
                .to_owned()
        };
        let name = var("NONO_HOSTNAME").unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname").map_or_else(|_| "unknown".to_owned(), |h| h.trim().to_owned())
        });
        Ok(Host { id, name })
    }
}

/// The stable UUID of a local session: the same host, local id and start
/// time always give the same UUID, and another database (or host) gives
/// another.
#[must_use]
pub fn session_uuid(host: &Host, s: &Session) -> Uuid {
    Uuid::new_v5(&SESSION_NAMESPACE, format!("{}/{}/{}", host.id, s.id, s.started_ns).as_bytes())
}
