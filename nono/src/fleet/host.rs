//! Who pushed a session: the host identity (`/etc/machine-id` and the host
//! name), the stable UUID a session gets from it, so that pushing the same
//! session twice finds the first copy, and how a host is named to people.
//!
//! A host is its id, never its name: names repeat (every cloud image is
//! `localhost` or `vm` at first) and change. People see a label,
//! `NAME#ID-PREFIX`, whose prefix is long enough to tell the fleet's hosts
//! apart (at least [`MIN_ID_CHARS`] characters), and `--host` takes an id,
//! a label, a unique id prefix or a name that only one host carries; a
//! name that several hosts carry is refused with the candidates listed.

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

/// Characters of the id a label shows at least (as git shows commits).
pub const MIN_ID_CHARS: usize = 8;

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

    /// This host's label where it is the only host (a local database).
    #[must_use]
    pub fn label(&self) -> String {
        label(&self.name, &self.id, MIN_ID_CHARS)
    }
}

/// `NAME#ID-PREFIX`: the name and the first `chars` characters of the id
/// (all of it when shorter).
#[must_use]
pub fn label(name: &str, id: &str, chars: usize) -> String {
    format!("{name}#{}", prefix(id, chars))
}

fn prefix(id: &str, chars: usize) -> &str {
    id.char_indices().nth(chars).map_or(id, |(i, _)| &id[..i])
}

/// How many characters of an id tell every one of `ids` apart: at least
/// [`MIN_ID_CHARS`], more when two ids share a longer prefix.
#[must_use]
pub fn id_chars<'a>(ids: impl IntoIterator<Item = &'a str>) -> usize {
    let mut sorted: Vec<&str> = ids.into_iter().collect();
    sorted.sort_unstable();
    sorted.dedup();
    let common = |a: &str, b: &str| a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    sorted.windows(2).map(|w| common(w[0], w[1]) + 1).fold(MIN_ID_CHARS, usize::max)
}

/// One host of a fleet: its id, the names its sessions were pushed under
/// (newest last) and how many sessions it has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetHost {
    pub id: String,
    pub names: Vec<String>,
    pub sessions: u64,
}

impl FleetHost {
    /// The name it was last pushed under.
    #[must_use]
    pub fn name(&self) -> &str {
        self.names.last().map_or("", String::as_str)
    }

    fn describe(&self, chars: usize) -> String {
        format!("{} (id {}, {} session(s))", label(self.name(), &self.id, chars), self.id, self.sessions)
    }
}

/// The host `spec` names among `hosts`: its id exactly, else a label
/// (`NAME#ID-PREFIX`), else an id prefix or a name that only one host
/// matches. Returns the host's id.
pub fn resolve(spec: &str, hosts: &[FleetHost]) -> Result<String, FleetError> {
    let chars = id_chars(hosts.iter().map(|h| h.id.as_str()));
    if let Some(h) = hosts.iter().find(|h| h.id == spec) {
        return Ok(h.id.clone());
    }
    let matches: Vec<&FleetHost> = if let Some((name, id)) = spec.rsplit_once('#') {
        hosts.iter().filter(|h| h.names.iter().any(|n| n == name) && h.id.starts_with(id)).collect()
    } else {
        let by_name: Vec<&FleetHost> = hosts.iter().filter(|h| h.names.iter().any(|n| n == spec)).collect();
        if by_name.is_empty() { hosts.iter().filter(|h| h.id.starts_with(spec)).collect() } else { by_name }
    };
    match matches.as_slice() {
        [one] => Ok(one.id.clone()),
        [] => Err(FleetError::UnknownHost {
            spec: spec.to_owned(),
            known: if hosts.is_empty() {
                "none yet (no session was pushed completely)".to_owned()
            } else {
                hosts.iter().map(|h| h.describe(chars)).collect::<Vec<_>>().join(", ")
            },
        }),
        many => Err(FleetError::AmbiguousHost {
            spec: spec.to_owned(),
            candidates: many.iter().map(|h| h.describe(chars)).collect::<Vec<_>>().join(", "),
        }),
    }
}

/// The stable UUID of a local session: the same host, local id and start
/// time always give the same UUID, and another database (or host) gives
/// another.
#[must_use]
pub fn session_uuid(host: &Host, s: &Session) -> Uuid {
    Uuid::new_v5(&SESSION_NAMESPACE, format!("{}/{}/{}", host.id, s.id, s.started_ns).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(id: &str, names: &[&str]) -> FleetHost {
        FleetHost { id: id.to_owned(), names: names.iter().map(|n| (*n).to_owned()).collect(), sessions: 1 }
    }

    #[test]
    fn labels_show_enough_of_the_id_to_tell_hosts_apart() {
        assert_eq!(label("vm", "3f2a9c1e5b7d4e00", MIN_ID_CHARS), "vm#3f2a9c1e");
        assert_eq!(label("vm", "hostb", MIN_ID_CHARS), "vm#hostb");
        assert_eq!(id_chars(["3f2a9c1e5b", "77aa01bc00"]), MIN_ID_CHARS);
        assert_eq!(id_chars(["3f2a9c1e5b", "3f2a9c1e77"]), 9);
        assert_eq!(id_chars(["3f2a9c1e5b", "3f2a9c1e5b"]), MIN_ID_CHARS, "one host, not two");
    }

    #[test]
    fn host_spec_resolves_to_one_id_or_lists_the_candidates() {
        let hosts = [host("3f2a9c1e5b", &["vm"]), host("77aa01bc00", &["vm"]), host("c0ffee0000", &["ci-7"])];
        assert_eq!(resolve("ci-7", &hosts).expect("a unique name"), "c0ffee0000");
        assert_eq!(resolve("77aa01bc00", &hosts).expect("an id"), "77aa01bc00");
        assert_eq!(resolve("vm#3f2a", &hosts).expect("a label"), "3f2a9c1e5b");
        assert_eq!(resolve("77aa", &hosts).expect("an id prefix"), "77aa01bc00");
        let err = resolve("vm", &hosts).expect_err("two hosts are called vm").to_string();
        assert!(err.contains("vm#3f2a9c1e") && err.contains("vm#77aa01bc"), "{err}");
        let err = resolve("nope", &hosts).expect_err("unknown").to_string();
        assert!(err.contains("ci-7#c0ffee00"), "{err}");
    }
}
