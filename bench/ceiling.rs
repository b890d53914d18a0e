//! The ceiling of the benchmark: the least a warp server can do per request,
//! answering a fixed item-sized JSON on every path, on the same runtime
//! set-up as shopd. `ceiling ADDR:PORT`; prints its address on stdout.

use warp::Filter;
use warp::http::{HeaderValue, header};
use warp::reply::Response;

const ITEM: &str = r#"{"id":1,"name":"bench item","price":9.99,"deleted":false}"#;

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .expect("the ceiling server needs a free address");
    println!(
        "ceiling listening on http://{}",
        listener
            .local_addr()
            .expect("a bound listener has an address")
    );
    let route = warp::any().map(|| {
        let mut response = Response::new(ITEM.into());
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    });
    warp::serve(route).incoming(listener).run().await;
}
