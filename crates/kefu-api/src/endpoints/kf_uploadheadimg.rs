//! `POST /customservice/kfaccount/uploadheadimg?kf_account=…`: set an account's
//! head image from a `multipart/form-data` part named `media`.

use schemars::JsonSchema;
use serde::Serialize;

use crate::endpoint::{Endpoint, Group, Method, Outgoing, OutgoingBody, Sent};
use crate::{ErrCode, KfAccount, Refused, Status};

/// The name of the file part.
pub const MEDIA_FIELD: &str = "media";
/// The largest accepted image (5 MiB); larger images answer 40009.
pub const MAX_IMAGE_BYTES: usize = 5 * 1024 * 1024;

/// The endpoint.
#[derive(Debug, Clone, Copy)]
pub struct UploadHeadImg;

impl Endpoint for UploadHeadImg {
    const NAME: &'static str = "kf_uploadheadimg";
    const SUMMARY: &'static str = "Set an account's head image (a JPEG)";
    const GROUP: Group = Group::KfAccounts;
    const EXAMPLE: &'static str = r#"{"kf_account":"test1@test"}"#;
    const METHOD: Method = Method::Post;
    const PATH: &'static str = "/customservice/kfaccount/uploadheadimg";
    /// The 5 MiB image and 64 KiB of multipart envelope.
    const MAX_BODY: usize = MAX_IMAGE_BYTES + 64 * 1024;
    /// A second upload of the same image leaves the same head image.
    const IDEMPOTENT: bool = true;
    const FILE_FIELD: Option<&'static str> = Some(MEDIA_FIELD);
    type Request = Request;
    type Response = Status;

    fn check(sent: &Sent<'_>) -> Result<(), Refused> {
        KfAccount::check_for(sent.query("kf_account"), ErrCode::InvalidKfAccount, |_| {
            true
        })
        .map(drop)
    }

    /// The account in the query, the image as the `media` part of a multipart body.
    fn outgoing(request: &Request) -> Outgoing {
        Outgoing {
            method: Method::Post,
            query: vec![("kf_account".to_owned(), request.kf_account.to_string())],
            body: OutgoingBody::File {
                field: MEDIA_FIELD,
                file_name: "headimg.jpg",
                content_type: "image/jpeg",
                bytes: request.media.clone(),
            },
        }
    }
}

/// The account whose head image is set, and the JPEG.
#[derive(Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Request {
    /// The account (in the query).
    pub kf_account: KfAccount,
    /// The JPEG bytes (the `media` part).
    #[serde(skip)]
    pub media: Vec<u8>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("kf_account", &self.kf_account)
            .field("media", &format_args!("{} bytes", self.media.len()))
            .finish()
    }
}

/// Whether the bytes are a JPEG (by their signature, whatever the file name says).
#[must_use]
pub fn is_jpeg(bytes: &[u8]) -> bool {
    bytes.len() >= 4 && bytes.starts_with(&[0xFF, 0xD8, 0xFF])
}
