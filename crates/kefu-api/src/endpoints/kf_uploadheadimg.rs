//! `POST /customservice/kfaccount/uploadheadimg?kf_account=…`: set an account's
//! head image from a `multipart/form-data` part named `media`.

use crate::Status;
use crate::endpoint::{Endpoint, Method};

/// The name of the file part.
pub const MEDIA_FIELD: &str = "media";
/// The largest accepted image (5 MiB); larger images answer 40009.
pub const MAX_IMAGE_BYTES: usize = 5 * 1024 * 1024;

/// The endpoint.
#[derive(Debug, Clone, Copy)]
pub struct UploadHeadImg;

impl Endpoint for UploadHeadImg {
    const METHOD: Method = Method::Post;
    const PATH: &'static str = "/customservice/kfaccount/uploadheadimg";
    /// The 5 MiB image and 64 KiB of multipart envelope.
    const MAX_BODY: usize = MAX_IMAGE_BYTES + 64 * 1024;
    /// The JPEG bytes; the account travels in the query.
    type Request = Vec<u8>;
    type Response = Status;
}

/// Whether the bytes are a JPEG (by their signature, whatever the file name says).
#[must_use]
pub fn is_jpeg(bytes: &[u8]) -> bool {
    bytes.len() >= 4 && bytes.starts_with(&[0xFF, 0xD8, 0xFF])
}
