//! `POST /msd/write` (the raw body streamed to the storage) and `GET /msd/read` (an image
//! streamed out, compressed on the fly if asked) (spec `atx-msd-gpio-redfish.md` 3.7, 3.9).

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use kvmd_core::ApiError;
use kvmd_core::envelope::{ApiResponse, ApiResult};
use kvmd_core::query::Query;
use kvmd_core::routes::{Answer, Api, Body, Flow, Param, Role, Route, Ty};
use kvmd_core::valid;

use super::block;
use super::msd::{IMAGE, remove_incomplete};
use crate::msd::Msd;
use crate::transfer::{WriteResult, Writer, spawn_reader, spawn_writer};

/// Chunks queued between the connection and the disk (each at most what actix read at
/// once): the memory an upload may hold.
pub(crate) const WRITE_QUEUE: usize = 32;

pub(crate) const PREFIX: Param = Param::opt("prefix", Ty::str(4096), "A directory of the storage (a partition)");
pub(crate) const REMOVE_INCOMPLETE: Param =
    Param::opt("remove_incomplete", Ty::Bool, "Delete the image if the transfer ends early");

/// The group's routes.
pub fn routes(api: &mut Api) {
    api.route(
        Route::post("/msd/write")
            .flow(Flow::BigPost)
            .doc("Uploads an image: the raw body, `Content-Length` required, streamed to the storage")
            .params(
                const {
                    &[
                        Param::opt("image", Ty::str(4096), "The new image's name (under `prefix`)"),
                        PREFIX,
                        REMOVE_INCOMPLETE,
                    ]
                },
            )
            .body(Body::Raw("application/octet-stream"))
            .answer(Answer::Envelope("`{image: {name, size, written}}`")),
        write,
    )
    .route(
        Route::get("/msd/read")
            // An image's contents are the operator's, as writing them is.
            .role(Role::Operator)
            .flow(Flow::Download)
            .doc("Downloads an image")
            .params(
                const {
                    &[
                        IMAGE,
                        Param::opt(
                            "compress",
                            Ty::Str { max_len: Some(4), pattern: Some("^(|none|lzma|zstd)$") },
                            "`lzma` (XZ) or `zstd`, done on the fly",
                        ),
                    ]
                },
            )
            .answer(Answer::Stream("application/octet-stream")),
        read,
    );
}

async fn write(msd: web::Data<Msd>, req: HttpRequest, mut body: web::Payload) -> ApiResult<WriteResult> {
    let q = Query::of(&req);
    let name = crate::name::prefixed(q.get("prefix"), q.get("image"))?;
    let length = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok());
    let size = u64::try_from(valid::int(length, "int", Some(0), None)?).unwrap_or(0);
    let remove = remove_incomplete(&q)?;
    let msd = msd.into_inner();
    let writer = block(move || Writer::begin(&msd, name, size, remove)).await?;
    let (tx, done) = spawn_writer(writer, WRITE_QUEUE);
    while let Some(chunk) = body.next().await {
        match chunk {
            // The writer stopped (an error it reports below).
            Ok(b) => {
                if tx.send(b).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "the upload's connection broke");
                break;
            }
        }
    }
    drop(tx);
    let result = done.await.map_err(ApiError::internal)??;
    Ok(ApiResponse::new(result))
}

/// Python's `urllib.parse.quote(name, safe="")`: every byte but `A-Za-z0-9_.-~` as `%XX`.
fn quote(name: &str) -> String {
    let mut out = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"_.-~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn read(msd: web::Data<Msd>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let q = Query::of(&req);
    let name = super::image_arg(&q)?;
    let compression = crate::name::compression(q.get("compress"))?;
    let msd = msd.into_inner();
    let file_name = format!("{name}{}", compression.suffix());
    let (rx, size) = block(move || {
        let busy = msd.enter()?;
        let (path, size) = msd.readable(&name)?;
        let chunk = msd.config().read_chunk_size;
        Ok((spawn_reader(busy, name, path, size, compression, chunk)?, size))
    })
    .await?;
    let disposition = format!("attachment; filename*=UTF-8''{}", quote(&file_name));
    let mut resp = HttpResponse::Ok();
    resp.insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream")))
        .insert_header((header::CONTENT_DISPOSITION, disposition));
    if compression == crate::name::Compression::None {
        resp.no_chunking(size);
    }
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    Ok(resp.streaming(stream))
}

#[cfg(test)]
mod tests {
    #[test]
    fn file_names_are_quoted_as_python_quotes_them() {
        assert_eq!(super::quote("win/тест 1.iso.zst"), "win%2F%D1%82%D0%B5%D1%81%D1%82%201.iso.zst");
        assert_eq!(super::quote("a-b_c.~x"), "a-b_c.~x");
    }
}
