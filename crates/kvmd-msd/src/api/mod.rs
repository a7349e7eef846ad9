//! The HTTP routes, one module per URL group.

pub mod feed;
pub mod msd;
pub mod providers;
pub mod redfish;
pub mod remote;
pub mod transfer;

use kvmd_core::ApiError;
use kvmd_core::query::Query;
use kvmd_core::valid;

/// Runs file-system work off the HTTP worker.
pub(crate) async fn block<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    actix_web::web::block(f).await.map_err(ApiError::internal)?
}

/// An optional bool argument (kvmd's `valid_bool`), `default` when absent.
pub(crate) fn flag(q: &Query, key: &str, default: bool) -> Result<bool, ApiError> {
    q.get(key).map_or(Ok(default), |v| valid::boolean(Some(v)))
}

/// The image argument of `read` and `remove`: required (kvmd's `stripped string`
/// message when missing), then an MSD image name.
pub(crate) fn image_arg(q: &Query) -> Result<String, ApiError> {
    let v = crate::name::stripped(q.get("image"))?;
    crate::name::image_name(Some(v), false)
}
