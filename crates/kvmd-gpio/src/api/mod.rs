//! The HTTP routes, one module per URL group.

pub mod atx;
pub mod feed;
pub mod gpio;
pub mod redfish;

use kvmd_core::ApiError;
use kvmd_core::query::Query;
use kvmd_core::valid;

/// kvmd's `wait` argument (default false), read after the group's own arguments.
pub(crate) fn wait(q: &Query) -> Result<bool, ApiError> {
    q.get("wait").map_or(Ok(false), |v| valid::boolean(Some(v)))
}

/// `check_string_in_list` behind kvmd's raw limit of 16 characters.
pub(crate) fn choice(arg: Option<&str>, name: &str, variants: &[&str]) -> Result<String, ApiError> {
    if let Some(a) = arg {
        valid::check_raw(a, 16)?;
    }
    valid::string_in_list(arg, name, variants)
}
