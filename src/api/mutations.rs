//! Mutating requests run to completion whatever their client does.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

/// Runs a mutating request (any method but `GET`, `HEAD` and `OPTIONS`) in a task of its
/// own, tracked by `mutations`, so that a client going away mid-request — hyper then drops
/// the request's future — cannot stop it between its storage write, its re-index and its
/// change-feed entry: half a mutation would leave the index (and other replicas) behind
/// storage until the next sync check. A graceful shutdown waits for these tasks
/// ([`crate::app::App::close`]). Reads stay on the connection's task: dropping them loses
/// nothing.
pub(super) async fn run_to_completion(
    State(mutations): State<tokio_util::task::TaskTracker>,
    request: Request,
    next: Next,
) -> Response {
    use axum::http::Method;
    use tracing::Instrument as _;
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    let task = mutations.spawn(next.run(request).instrument(tracing::Span::current()));
    match task.await {
        Ok(response) => response,
        Err(error) => {
            if error.is_panic() {
                std::panic::resume_unwind(error.into_panic());
            }
            super::panic_response(Box::new("request task cancelled"))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use tokio::io::AsyncWriteExt as _;

    /// A client that sends `method /` and hangs up after 50 ms, before the handler (300 ms)
    /// is done: the handler's end is recorded in `ended` or not.
    async fn hang_up_during(method: &str) -> bool {
        let ended = Arc::new(AtomicBool::new(false));
        let tracker = tokio_util::task::TaskTracker::new();
        let handler = {
            let ended = ended.clone();
            move || async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                ended.store(true, Ordering::Release);
            }
        };
        let router = axum::Router::new()
            .route("/", axum::routing::get(handler.clone()).post(handler))
            .route_layer(axum::middleware::from_fn_with_state(
                tracker.clone(),
                super::run_to_completion,
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, router).await });
        let mut client = tokio::net::TcpStream::connect(address).await.unwrap();
        client
            .write_all(
                format!("{method} / HTTP/1.1\r\nhost: t\r\ncontent-length: 0\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(client);
        tokio::time::sleep(Duration::from_millis(600)).await;
        tracker.close();
        tracker.wait().await;
        server.abort();
        ended.load(Ordering::Acquire)
    }

    /// A mutation whose client hangs up still runs to its end (nothing half done between its
    /// storage write, its re-index and its feed entry); a read is dropped, as hyper does
    /// without the layer — which shows the hang-up really cancels what is not protected.
    #[tokio::test]
    async fn a_mutation_runs_to_completion_when_its_client_hangs_up() {
        assert!(hang_up_during("POST").await, "the mutation was cut short");
        assert!(
            !hang_up_during("GET").await,
            "the hang-up did not cancel the read"
        );
    }
}
