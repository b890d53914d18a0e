//! Unit tests of the parent module.

use super::*;

#[test]
fn every_label_set_keeps_its_own_handles() {
    let telemetry = Telemetry::new();
    let long = Duration::from_millis(2);
    for _ in 0..3 {
        telemetry.record_request("/a", &Method::GET, StatusCode::OK, long, 1, 10);
    }
    telemetry.record_request("/a", &Method::GET, StatusCode::NOT_FOUND, long, 0, 20);
    telemetry.record_request("/b", &Method::POST, StatusCode::CREATED, long, 5, 30);
    let text = telemetry.render(StoreStats::default(), true, ChatStats::default());
    for line in [
        r#"http_requests_total{handler="/a",method="GET",status="2xx"} 3"#,
        r#"http_requests_total{handler="/a",method="GET",status="4xx"} 1"#,
        r#"http_requests_total{handler="/b",method="POST",status="2xx"} 1"#,
        r#"http_request_size_bytes_sum{handler="/a"} 3"#,
        r#"http_response_size_bytes_sum{handler="/a"} 50"#,
        r#"http_response_size_bytes_count{handler="/a"} 4"#,
        r"http_request_duration_highr_seconds_count 5",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from\n{text}"
        );
    }
}
