//! What a failed CloudWatch Logs request says to people: one line (what
//! failed and why, from the innermost cause or the service's error code and
//! message) instead of the SDK's nested debug structures, which are kept
//! for `-v`. A connection refused is not retried (nothing listens there;
//! eight attempts only made the user wait 20 s), and every retry that does
//! happen is said on stderr with the failure it follows.

use std::error::Error as StdError;

use aws_sdk_cloudwatchlogs::config::interceptors::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef, InterceptorContext,
};
use aws_sdk_cloudwatchlogs::config::retry::{ClassifyRetry, RetryAction};
use aws_sdk_cloudwatchlogs::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_cloudwatchlogs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_types::config_bag::{Storable, StoreReplace};

/// The innermost cause of `e`, which is what a person can act on
/// ("Connection refused (os error 111)", "dns error: ...").
fn root_cause(e: &(dyn StdError + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// One line for a failed request: `(line, details for -v)`.
pub fn describe<E, R>(e: &SdkError<E, R>) -> (String, String)
where
    E: ProvideErrorMetadata + StdError + 'static,
    R: std::fmt::Debug + 'static,
{
    let line = match e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            match (err.code(), err.message()) {
                (Some(code), Some(msg)) => format!("{code}: {msg}"),
                (Some(code), None) => code.to_string(),
                _ => root_cause(err),
            }
        }
        SdkError::TimeoutError(_) => "the request timed out".to_string(),
        SdkError::DispatchFailure(_) => format!("cannot connect: {}", root_cause(e)),
        SdkError::ResponseError(_) => format!("unreadable response: {}", root_cause(e)),
        _ => root_cause(e),
    };
    (line, DisplayErrorContext(e).to_string())
}

/// Whether `e` (or a cause of it) is a refused TCP connection.
fn is_refused(e: &(dyn StdError + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Forbids retrying a refused connection.
#[derive(Debug)]
pub struct NoRetryWhenRefused;

impl ClassifyRetry for NoRetryWhenRefused {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        match ctx.output_or_error() {
            Some(Err(err)) if err.as_connector_error().is_some_and(|c| is_refused(c)) => {
                RetryAction::RetryForbidden
            }
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "no retry when the connection is refused"
    }
}

/// The failure of the attempt before, kept in the request's config bag.
#[derive(Debug, Clone)]
struct LastFailure(String);

impl Storable for LastFailure {
    type Storer = StoreReplace<Self>;
}

/// Says on stderr when a request is tried again, and why.
#[derive(Debug)]
pub struct SayRetries {
    pub max_attempts: u32,
}

impl Intercept for SayRetries {
    fn name(&self) -> &'static str {
        "say retries"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(Err(err)) = context.output_or_error() {
            let why = match err.as_connector_error() {
                Some(c) => root_cause(c),
                None => root_cause(err),
            };
            cfg.interceptor_state().store_put(LastFailure(why));
        }
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let attempt = cfg.load::<RequestAttempts>().map_or(1, |a| a.attempts());
        if attempt > 1 {
            let why = cfg
                .load::<LastFailure>()
                .map_or("it failed", |f| f.0.as_str());
            eprintln!(
                "eksaudit: CloudWatch Logs request failed ({why}); retrying, attempt {attempt} of {}",
                self.max_attempts
            );
        }
        Ok(())
    }
}
