//! kvmd's busy-region tasks (`run_region_task`): an operation that entered its region runs
//! as its own task, so that a client going away never cancels it; the request is answered
//! at once, or with `wait` when the operation is over, its failure then the answer's (in
//! the group's own error: kvmd's `GpioDriverOfflineError` for a channel).

use kvmd_core::ApiError;

/// Runs `op` as a task; with `wait`, answers its outcome, else `Ok` at once.
pub async fn run<F>(op: F, wait: bool) -> Result<(), ApiError>
where
    F: Future<Output = Result<(), ApiError>> + Send + 'static,
{
    let job = tokio::spawn(op);
    if !wait {
        return Ok(());
    }
    match job.await {
        Ok(result) => result,
        Err(e) => Err(ApiError::internal(e)),
    }
}
