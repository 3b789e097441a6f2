//! How storage failures reach clients.

use crate::ApiError;
use storage::DbError;

/// 503 with `Retry-After` when the database is locked, unreachable, missing
/// or not granted (an operator problem or a passing one); 500 for everything else,
/// which is a bug. The cause is logged, never sent.
pub fn db_error(e: DbError) -> ApiError {
    match e {
        DbError::Busy(_) | DbError::Unavailable(_) | DbError::NoSuchDatabase(_) | DbError::AccessDenied(_) => {
            ApiError::unavailable("database_unavailable", "the database is unavailable; retry shortly")
                .with_header("retry-after", "1")
                .with_internal(e)
        }
        other => ApiError::internal(other),
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        db_error(e)
    }
}
