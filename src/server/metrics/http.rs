//! The metrics port's HTTP/1.x: a request head parsed by `httparse`, routed
//! to one of three paths, and a whole response written with
//! `Connection: close`. Socket-free, so every case is a unit test.

/// Most header lines a request may have; more is a bad request.
const MAX_HEADERS: usize = 32;

/// What the metrics port serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/metrics`: the exposition.
    Metrics,
    /// `/livez`: the reactor is turning.
    Livez,
    /// `/readyz`: the server can answer requests.
    Readyz,
}

/// What a connection's bytes so far amount to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// Not a whole request head yet.
    Partial,
    /// A request for `route`; `head_only` for `HEAD` (no body in the answer).
    Request { route: Route, head_only: bool },
    /// A well-formed request for a path not served here: 404.
    NotFound { head_only: bool },
    /// A method other than `GET` and `HEAD`: 405.
    MethodNotAllowed,
    /// Not HTTP, or a request with a body, or too many headers: 400.
    Bad,
}

/// Parses the request head at the start of `buf`.
pub fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(buf) {
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Err(_) => Parsed::Bad,
        Ok(httparse::Status::Complete(_)) => route(&request),
    }
}

fn route(request: &httparse::Request<'_, '_>) -> Parsed {
    // The body of a request is never read: one that announces a body is
    // refused rather than left in the socket.
    let has_body = request.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding")
            || (h.name.eq_ignore_ascii_case("content-length")
                && h.value
                    .iter()
                    .any(|&b| b != b'0' && !b.is_ascii_whitespace()))
    });
    if has_body {
        return Parsed::Bad;
    }
    let head_only = match request.method {
        Some("GET") => false,
        Some("HEAD") => true,
        _ => return Parsed::MethodNotAllowed,
    };
    let path = request.path.unwrap_or("");
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let route = match path {
        "/metrics" => Route::Metrics,
        "/livez" => Route::Livez,
        "/readyz" => Route::Readyz,
        _ => return Parsed::NotFound { head_only },
    };
    Parsed::Request { route, head_only }
}

/// A whole response: status line, headers, and `body` unless `head_only`.
pub fn response(code: u16, content_type: &str, body: &str, head_only: bool) -> Vec<u8> {
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let allow = if code == 405 {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         {allow}Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// The answer to anything but a served request: a status and a short text.
pub fn error_response(parsed: Parsed) -> Vec<u8> {
    let (code, body, head_only) = match parsed {
        Parsed::NotFound { head_only } => (404, "not found\n", head_only),
        Parsed::MethodNotAllowed => (405, "only GET and HEAD\n", false),
        _ => (400, "bad request\n", false),
    };
    response(code, "text/plain; charset=utf-8", body, head_only)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let get = |path: &str| parse(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        let ok = |route| Parsed::Request {
            route,
            head_only: false,
        };
        assert_eq!(get("/metrics"), ok(Route::Metrics));
        assert_eq!(get("/metrics?name[]=x"), ok(Route::Metrics));
        assert_eq!(get("/livez"), ok(Route::Livez));
        assert_eq!(get("/readyz"), ok(Route::Readyz));
        assert_eq!(get("/"), Parsed::NotFound { head_only: false });
        assert_eq!(
            parse(b"HEAD /metrics HTTP/1.0\r\n\r\n"),
            Parsed::Request {
                route: Route::Metrics,
                head_only: true
            }
        );
        assert_eq!(
            parse(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Parsed::MethodNotAllowed
        );
    }

    #[test]
    fn partial_bad_and_bodies() {
        assert_eq!(parse(b"GET /metrics HTTP/1.1\r\nHost:"), Parsed::Partial);
        assert_eq!(parse(b""), Parsed::Partial);
        assert_eq!(parse(b"\x00\x01junk\r\n\r\n"), Parsed::Bad);
        assert_eq!(
            parse(b"GET /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"),
            Parsed::Bad
        );
        assert_eq!(
            parse(b"GET /livez HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
            Parsed::Request {
                route: Route::Livez,
                head_only: false
            }
        );
        assert_eq!(
            parse(b"GET /livez HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Parsed::Bad
        );
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: y\r\n")).collect();
        assert_eq!(
            parse(format!("GET /livez HTTP/1.1\r\n{many}\r\n").as_bytes()),
            Parsed::Bad
        );
    }

    #[test]
    fn responses() {
        let text = String::from_utf8(response(200, "text/plain", "ok\n", false)).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("Content-Length: 3\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\nok\n"), "{text}");
        let head = String::from_utf8(response(200, "text/plain", "ok\n", true)).unwrap();
        assert!(head.ends_with("\r\n\r\n"), "{head}");
        let bad = String::from_utf8(error_response(Parsed::Bad)).unwrap();
        assert!(bad.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{bad}");
        let allow = String::from_utf8(error_response(Parsed::MethodNotAllowed)).unwrap();
        assert!(allow.contains("Allow: GET, HEAD\r\n"), "{allow}");
    }
}
