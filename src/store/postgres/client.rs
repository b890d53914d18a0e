//! `with_client!`: one pooled connection per operation, serialization
//! failures retried, the outcome noted for the outage log. A macro, not a
//! function, so the body may borrow the connection across its awaits.

/// Runs `$body`, an expression using a pooled connection `$client` and
/// `?` on `Failure`s, retrying serialization failures; notes the outcome
/// for the outage log.
macro_rules! with_client {
    ($store:expr, |$client:ident| $body:expr) => {{
        let mut attempt = 1;
        let result = loop {
            let outcome: Result<_, $crate::store::postgres::errors::Failure> = async {
                #[allow(unused_mut)]
                let mut $client = $store.pool.get().await?;
                $body
            }
            .await;
            match outcome {
                Err(failure)
                    if failure.is_retryable()
                        && attempt < $crate::store::postgres::errors::ATTEMPTS =>
                {
                    tokio::time::sleep($crate::store::postgres::errors::backoff(attempt)).await;
                    attempt += 1;
                }
                other => {
                    break other
                        .map_err($crate::store::postgres::errors::Failure::into_store_error);
                }
            }
        };
        $store.outage.note(result.as_ref().err());
        result
    }};
}
