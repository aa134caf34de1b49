//! The listening side: accepts connections up to the configured limit, serves HTTP/1.1
//! with a deadline for each request head (a slow client cannot hold a connection slot
//! forever), and refreshes the code fingerprints in the background.

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::pipeline::{Router, identify};

/// How often the proprietary trees are checked for changed files.
const CODE_REFRESH: Duration = Duration::from_secs(5);

/// Serves until `shutdown` resolves; connections in flight finish on their own.
pub async fn serve(
    router: Arc<Router>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(router.config.max_connections));
    let refresher = tokio::spawn(refresh_code(Arc::clone(&router)));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&slots).acquire_owned() => permit,
        };
        let Ok(permit) = permit else { break };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("nemoclaw router: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let local = stream.local_addr()?;
        let _ = stream.set_nodelay(true);
        let router = Arc::clone(&router);
        let header_timeout = router.config.header_timeout;
        tokio::spawn(async move {
            // Which sandbox: once per connection, from the kernel.
            let client = Arc::new(identify(local, peer));
            let service = service_fn(move |request| {
                let (router, client) = (Arc::clone(&router), Arc::clone(&client));
                async move { Ok::<_, std::convert::Infallible>(router.handle(request, &client).await) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .max_buf_size(64 << 10)
                .serve_connection(TokioIo::new(stream), service);
            // A client that breaks its connection only ends its own request.
            let _ = connection.await;
            drop(permit);
        });
    }
    refresher.abort();
    Ok(())
}

async fn refresh_code(router: Arc<Router>) {
    let mut tick = tokio::time::interval(CODE_REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let scanners = router.directory.scanners();
        let _ = tokio::task::spawn_blocking(move || {
            for scanner in scanners.iter().filter_map(std::sync::Weak::upgrade) {
                scanner.refresh_code();
            }
        })
        .await;
    }
}
