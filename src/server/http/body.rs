//! Request bodies: read with a size cap, decompressed (gzip or deflate) with the same cap so
//! that a compression bomb is refused instead of filling memory; responses compressed per
//! `Accept-Encoding` as Triton chooses.

use std::io::{Read, Write};

use axum::body::Body;
use axum::http::HeaderMap;
use axum::http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use super::error::ApiError;
use crate::status::Status;

/// Bodies larger than this are (de)compressed on the blocking pool, not on a runtime worker.
const INLINE_CODEC_BYTES: usize = 64 * 1024;

fn too_large(limit: usize) -> Status {
    Status::invalid_arg(format!(
        "request body exceeds the maximum allowed input size of {limit} bytes. Use --http-max-input-size to increase the limit."
    ))
}

/// Reads the whole body, refusing more than `limit` bytes (before reading, when
/// Content-Length already says so).
pub async fn read(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, Status> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    let mut stream = body.into_data_stream();
    let mut first: Option<Bytes> = None;
    let mut buf: Option<BytesMut> = None;
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| Status::invalid_arg(format!("failed to read the request body: {e}")))?;
        total = total.saturating_add(chunk.len());
        if total > limit {
            return Err(too_large(limit));
        }
        match (&mut first, &mut buf) {
            (None, None) => first = Some(chunk),
            (Some(f), None) => {
                let cap = declared.map_or(total, |n| n as usize).max(total);
                let mut b = BytesMut::with_capacity(cap);
                b.extend_from_slice(f);
                b.extend_from_slice(&chunk);
                buf = Some(b);
                first = None;
            }
            (_, Some(b)) => b.extend_from_slice(&chunk),
        }
    }
    Ok(match (first, buf) {
        (_, Some(b)) => b.freeze(),
        (Some(f), None) => f,
        (None, None) => Bytes::new(),
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Identity,
    Gzip,
    Deflate,
}

impl Codec {
    pub fn name(self) -> &'static str {
        match self {
            Codec::Identity => "identity",
            Codec::Gzip => "gzip",
            Codec::Deflate => "deflate",
        }
    }
}

/// The request's `Content-Encoding`; anything but identity, gzip and deflate is Triton's
/// 501 "Unsupported compression type" (with the supported ones in `Accept-Encoding`).
pub fn request_codec(headers: &HeaderMap) -> Result<Codec, ApiError> {
    let Some(v) = headers.get(CONTENT_ENCODING) else {
        return Ok(Codec::Identity);
    };
    match v.to_str().unwrap_or("?") {
        "gzip" => Ok(Codec::Gzip),
        "deflate" => Ok(Codec::Deflate),
        "" | "identity" => Ok(Codec::Identity),
        _ => Err(
            ApiError::from(Status::unsupported("Unsupported compression type"))
                .plain()
                .with_header(ACCEPT_ENCODING, "gzip, deflate"),
        ),
    }
}

/// Decompresses a request body, refusing to produce more than `limit` bytes.
pub async fn decompress(codec: Codec, body: Bytes, limit: usize) -> Result<Bytes, Status> {
    if codec == Codec::Identity {
        return Ok(body);
    }
    if body.len() <= INLINE_CODEC_BYTES {
        return inflate(codec, &body, limit);
    }
    tokio::task::spawn_blocking(move || inflate(codec, &body, limit))
        .await
        .map_err(|e| Status::internal(format!("decompression failed: {e}")))?
}

fn inflate(codec: Codec, body: &[u8], limit: usize) -> Result<Bytes, Status> {
    if body.is_empty() {
        return Err(Status::invalid_arg("nothing to be decompressed"));
    }
    let reader: Box<dyn Read + '_> = match codec {
        Codec::Gzip => Box::new(flate2::read::GzDecoder::new(body)),
        Codec::Deflate => Box::new(flate2::read::ZlibDecoder::new(body)),
        Codec::Identity => Box::new(body),
    };
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    // One byte more than allowed tells an oversized stream from one of exactly `limit`.
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            Status::invalid_arg(format!(
                "failed to decompress the request body ({}): {e}",
                codec.name()
            ))
        })?;
    if out.len() > limit {
        return Err(Status::invalid_arg(format!(
            "Decompressed data size exceeds the maximum allowed value of {limit} bytes. Use --http-max-input-size to increase the limit."
        )));
    }
    Ok(Bytes::from(out))
}

/// The response encoding Triton picks from `Accept-Encoding`: the supported one of highest
/// weight (`q`), the first on ties; identity otherwise.
pub fn response_codec(headers: &HeaderMap) -> Codec {
    let Some(v) = headers.get(ACCEPT_ENCODING).and_then(|v| v.to_str().ok()) else {
        return Codec::Identity;
    };
    let mut best = (Codec::Identity, 0.0f64);
    for part in v.split(',') {
        let (name, weight) = match part.find(";q=") {
            Some(p) => {
                let Ok(w) = part[p + 3..].trim().parse::<f64>() else {
                    continue;
                };
                (&part[..p], w)
            }
            None => (part, 1.0),
        };
        let name = name.trim_start_matches(' ');
        if name.is_empty() {
            continue;
        }
        let codec = match name {
            "identity" => Codec::Identity,
            "gzip" => Codec::Gzip,
            "deflate" => Codec::Deflate,
            _ => continue,
        };
        if weight > best.1 {
            best = (codec, weight);
        }
    }
    best.0
}

/// Compresses a response body; on failure the body goes uncompressed, as Triton does.
pub async fn compress(codec: Codec, body: Vec<u8>) -> Result<(Codec, Vec<u8>), Status> {
    if codec == Codec::Identity {
        return Ok((codec, body));
    }
    if body.len() <= INLINE_CODEC_BYTES {
        return Ok(deflate(codec, body));
    }
    tokio::task::spawn_blocking(move || deflate(codec, body))
        .await
        .map_err(|e| Status::internal(format!("response compression failed: {e}")))
}

fn deflate(codec: Codec, body: Vec<u8>) -> (Codec, Vec<u8>) {
    let level = flate2::Compression::default();
    let out = Vec::with_capacity(body.len() / 2 + 64);
    let done = match codec {
        Codec::Gzip => {
            let mut e = flate2::write::GzEncoder::new(out, level);
            e.write_all(&body).and_then(|_| e.finish())
        }
        Codec::Deflate => {
            let mut e = flate2::write::ZlibEncoder::new(out, level);
            e.write_all(&body).and_then(|_| e.finish())
        }
        Codec::Identity => Ok(body.clone()),
    };
    match done {
        Ok(c) => (codec, c),
        Err(e) => {
            tracing::debug!("unable to compress response: {e}");
            (Codec::Identity, body)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> Codec {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT_ENCODING, v.parse().unwrap());
        response_codec(&h)
    }

    #[test]
    fn accept_encoding_like_triton() {
        assert_eq!(accept("gzip"), Codec::Gzip);
        assert_eq!(accept("deflate"), Codec::Deflate);
        assert_eq!(accept("gzip, deflate"), Codec::Gzip);
        assert_eq!(accept("deflate, gzip"), Codec::Deflate);
        assert_eq!(accept("gzip;q=0.5, deflate"), Codec::Deflate);
        assert_eq!(accept("gzip;q=0.5, identity;q=0.9"), Codec::Identity);
        assert_eq!(accept("br"), Codec::Identity);
        assert_eq!(accept("gzip;q=x"), Codec::Identity);
        assert_eq!(accept("identity"), Codec::Identity);
        assert_eq!(response_codec(&HeaderMap::new()), Codec::Identity);
    }

    #[test]
    fn round_trip_and_bomb() {
        let data = vec![7u8; 10_000];
        for codec in [Codec::Gzip, Codec::Deflate] {
            let (c, z) = deflate(codec, data.clone());
            assert_eq!(c, codec);
            assert_eq!(&inflate(codec, &z, 10_000).unwrap()[..], &data[..]);
            let e = inflate(codec, &z, 9_999).unwrap_err();
            assert_eq!(
                e.message,
                "Decompressed data size exceeds the maximum allowed value of 9999 bytes. Use --http-max-input-size to increase the limit."
            );
        }
        assert!(
            inflate(Codec::Gzip, b"not gzip at all", 100)
                .unwrap_err()
                .message
                .starts_with("failed to decompress the request body (gzip): ")
        );
        assert_eq!(
            inflate(Codec::Gzip, b"", 100).unwrap_err().message,
            "nothing to be decompressed"
        );
    }
}
