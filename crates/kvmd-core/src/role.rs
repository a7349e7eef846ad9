//! Roles: what a user may do, and what each route needs.
//!
//! kvmd has users but no roles: every user may do everything. kvmd-rs gives each user one
//! of three roles, in increasing order: a [`Role::Viewer`] watches (video, state, info,
//! log), a [`Role::Operator`] also controls the target (keyboard and mouse, power, virtual
//! media, streamer settings), an [`Role::Admin`] does everything. A user nobody gave a
//! role is an admin, so a plain kvmd htpasswd file keeps its meaning.
//!
//! Each route declares the role it needs ([`crate::routes::Route::role`]; by default a
//! `GET` or `HEAD` needs a viewer, any other method an operator). The front renders those
//! needs into each location ([`need_spec`]) and hands them to kvmd-auth's `auth_request`
//! in [`NEED_HEADER`], so kvmd-auth decides once per request; every service checks the
//! same declaration again before the handler runs (a direct caller on its socket never
//! passed the front). The role kvmd-auth found travels in [`ROLE_HEADER`].

use serde::{Deserialize, Serialize};

use crate::routes::Method;

/// What a user may do. Ordered: each role may do what the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Video, state, info and the log: every `GET`.
    Viewer,
    /// Also control: HID, ATX, GPIO, mass storage, streamer settings.
    Operator,
    /// Everything, users and keys included.
    #[default]
    Admin,
}

/// The header in which nginx tells kvmd-auth what the request's route needs
/// ([`need_spec`]'s form).
pub const NEED_HEADER: &str = "X-KVMD-Need-Role";
/// The header in which kvmd-auth names the role it found (and nginx passes it on, always
/// overwriting the client's).
pub const ROLE_HEADER: &str = "X-KVMD-Auth-Role";

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    /// Its name on the wire and in configs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// The role named `s` (exactly as [`Role::as_str`] writes it).
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// What a route of `method` needs unless it says otherwise: reading is viewing,
    /// anything else is control.
    pub const fn default_for(method: Method) -> Role {
        match method {
            Method::Get | Method::Head | Method::Options => Role::Viewer,
            _ => Role::Operator,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The needs of one front location, by method: `GET=viewer,POST=operator`.
pub fn need_spec(needs: &[(Method, Role)]) -> String {
    needs.iter().map(|(m, r)| format!("{}={}", m.as_str(), r.as_str())).collect::<Vec<_>>().join(",")
}

/// What `spec` ([`need_spec`]'s form; `*=role` for any method not named) says a request
/// of `method` needs. An empty spec (a location no route declares, such as the web UI's
/// pages) needs a viewer; a method the spec does not name, or a spec that cannot be read,
/// needs an admin: nothing is let through by a mistake in it.
pub fn needed(spec: &str, method: &str) -> Role {
    if spec.trim().is_empty() {
        return Role::Viewer;
    }
    let pairs = || spec.split(',').filter_map(|part| part.split_once('=')).map(|(m, r)| (m.trim(), r.trim()));
    let named = pairs().find(|(m, _)| *m == method).or_else(|| pairs().find(|(m, _)| *m == "*"));
    named.and_then(|(_, r)| Role::parse(r)).unwrap_or(Role::Admin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_names_and_defaults() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("Admin"), None);
        assert_eq!(Role::default(), Role::Admin);
        assert_eq!(Role::default_for(Method::Get), Role::Viewer);
        assert_eq!(Role::default_for(Method::Post), Role::Operator);
    }

    #[test]
    fn a_spec_round_trips_and_fails_closed() {
        let spec = need_spec(&[(Method::Get, Role::Viewer), (Method::Post, Role::Admin)]);
        assert_eq!(spec, "GET=viewer,POST=admin");
        assert_eq!(needed(&spec, "GET"), Role::Viewer);
        assert_eq!(needed(&spec, "POST"), Role::Admin);
        assert_eq!(needed(&spec, "DELETE"), Role::Admin);
        assert_eq!(needed("GET=nosuch", "GET"), Role::Admin);
        assert_eq!(needed("", "POST"), Role::Viewer);
        assert_eq!(needed("*=viewer", "POST"), Role::Viewer);
        assert_eq!(needed("POST=admin,*=viewer", "POST"), Role::Admin);
    }
}
