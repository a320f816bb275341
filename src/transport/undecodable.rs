//! `INVALID_ARGUMENT` for requests that cannot be decoded. tonic answers a protobuf decode error
//! (a string field holding bytes that are not UTF-8, a message cut short) and a body that ends
//! inside a frame with `INTERNAL`, as if Baton had failed; the caller sent bad bytes. One layer
//! on both ports covers every door, Envoy's generated `Check` service included, whose codec
//! Baton does not choose.
//!
//! Every gRPC method Baton serves is unary, and tonic decodes a unary request before the
//! handler runs: a decode error is always a trailers-only response, its status in the headers.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// What tonic's messages for undecodable requests begin with: prost's `DecodeError` and the
/// frame decoder's. Baton's own errors never say these, so nothing else is reclassified.
const DECODE_FAILURES: [(&str, &str); 3] = [
    ("failed to decode Protobuf message: ", ""),
    (
        "Unexpected EOF decoding stream",
        "the request ends inside a message",
    ),
    ("protocol error: received message with", ""),
];

/// Wraps a gRPC router so that decode failures answer `INVALID_ARGUMENT`.
#[derive(Debug, Clone, Copy, Default)]
pub struct UndecodableLayer;

impl<S> tower::Layer<S> for UndecodableLayer {
    type Service = Undecodable<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Undecodable { inner }
    }
}

/// The service [`UndecodableLayer`] makes.
#[derive(Debug, Clone)]
pub struct Undecodable<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for Undecodable<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let answered = self.inner.call(request);
        Box::pin(async move {
            let mut response = answered.await?;
            reclassify(response.headers_mut());
            Ok(response)
        })
    }
}

/// Rewrites a decode failure's `INTERNAL` in `headers` as `INVALID_ARGUMENT`, naming what
/// could not be decoded.
fn reclassify(headers: &mut http::HeaderMap) {
    let Some(status) = Status::from_header_map(headers) else {
        return;
    };
    if status.code() != Code::Internal {
        return;
    }
    let Some(problem) = DECODE_FAILURES.iter().find_map(|(prefix, plain)| {
        let rest = status.message().strip_prefix(prefix)?;
        Some(if plain.is_empty() { rest } else { plain })
    }) else {
        return;
    };
    let mut details = ErrorDetails::new();
    details.set_error_info(
        "UNDECODABLE_REQUEST",
        "baton",
        HashMap::<String, String>::new(),
    );
    let reclassified = Status::with_error_details(
        Code::InvalidArgument,
        format!("the request cannot be decoded: {problem}"),
        details,
    );
    if reclassified.add_header(headers).is_err() {
        // Unreachable for these messages, which percent-encoding always fits in a header; the
        // original status stands, which still refuses the request.
        tracing::debug!("cannot rewrite the status of an undecodable request");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers_of(status: &Status) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        status.add_header(&mut headers).unwrap();
        headers
    }

    #[test]
    fn decode_errors_become_invalid_argument_naming_the_field() {
        let mut headers = headers_of(&Status::internal(
            "failed to decode Protobuf message: EntityRef.id: invalid string value: data is not UTF-8 encoded",
        ));
        reclassify(&mut headers);
        let status = Status::from_header_map(&headers).unwrap();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "the request cannot be decoded: EntityRef.id: invalid string value: data is not UTF-8 encoded"
        );
        assert_eq!(
            status.get_error_details().error_info().unwrap().reason,
            "UNDECODABLE_REQUEST"
        );
    }

    #[test]
    fn other_internal_errors_stay_internal() {
        let mut headers = headers_of(&Status::internal("internal error; see the server log"));
        reclassify(&mut headers);
        assert_eq!(
            Status::from_header_map(&headers).unwrap().code(),
            Code::Internal
        );
    }
}
