//! Where recordings are kept, and how operators fetch them: by a link that
//! works without credentials until it expires (a pre-signed URL).
//!
//! Every recording is written to `storage.recordings_dir` while its call
//! runs. Without S3 it stays there, and Voxgate signs its own links:
//! HMAC-SHA256 over the recording's name and the expiry, with a key every
//! node shares through the database; `GET /v1/recordings/{key}` checks them
//! and serves the file. With `[s3]`, each recording is uploaded (multipart)
//! when its call ends, confirmed with a HEAD, and only then removed locally;
//! a failed upload is retried with backoff while the local copy keeps
//! serving. Links to uploaded recordings are S3's own pre-signed URLs.
//!
//! A call record's `recording` is the local file name (`<call>.wav`) or
//! `s3://<bucket>/<key>`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_lc_rs::hmac;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use crate::config::S3Settings;
use crate::store::Store;

/// Links expire after this long unless asked otherwise.
pub const DEFAULT_TTL_S: u64 = 3600;

/// Multipart uploads send parts of this size (S3's minimum is 5 MiB).
const PART_BYTES: usize = 8 * 1024 * 1024;

/// The recording store.
#[derive(Debug)]
pub struct Recordings {
    dir: PathBuf,
    key: hmac::Key,
    s3: Option<S3>,
}

/// An S3 bucket and where in it recordings go.
#[derive(Debug, Clone)]
struct S3 {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

/// A link to a recording.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct SignedUrl {
    pub url: String,
    /// Unix seconds.
    pub expires_at: u64,
}

/// A recording could not be moved or linked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordingError {
    #[error("reading the local recording: {0}")]
    Io(#[from] std::io::Error),
    #[error("S3 {operation}: {message}")]
    S3 { operation: &'static str, message: String },
    #[error("S3 has {stored} bytes of a {local}-byte recording")]
    Mismatch { stored: i64, local: u64 },
}

fn s3_error(
    operation: &'static str,
) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> RecordingError {
    move |e| {
        // The SDK's Display is terse ("service error"); its source chain says what happened.
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            message = format!("{message}: {s}");
            source = s.source();
        }
        RecordingError::S3 { operation, message }
    }
}

impl Recordings {
    /// Recordings in `dir`, local links signed with `secret`, and moved to
    /// S3 when `s3.bucket` is set.
    #[must_use]
    pub fn new(dir: PathBuf, secret: &[u8], s3: &S3Settings) -> Self {
        let s3 = (!s3.bucket.is_empty()).then(|| S3 {
            client: s3_client(s3),
            bucket: s3.bucket.clone(),
            prefix: s3.prefix.clone(),
        });
        Self { dir, key: hmac::Key::new(hmac::HMAC_SHA256, secret), s3 }
    }

    /// Whether recordings go to S3.
    #[must_use]
    pub fn uses_s3(&self) -> bool {
        self.s3.is_some()
    }

    fn signature(&self, key: &str, expires: u64) -> hmac::Tag {
        hmac::sign(&self.key, format!("{key}\n{expires}").as_bytes())
    }

    /// A link to `recording` (a call record's `recording`) that works
    /// until `now_s + ttl_s`; `base` is how clients reach this server.
    ///
    /// # Errors
    /// S3 cannot presign (a bad configuration).
    pub async fn signed_url(
        &self,
        base: &str,
        recording: &str,
        now_s: u64,
        ttl_s: u64,
    ) -> Result<SignedUrl, RecordingError> {
        let expires = now_s + ttl_s;
        if let Some((bucket, key)) = recording.strip_prefix("s3://").and_then(|r| r.split_once('/')) {
            let client =
                self.s3.as_ref().map_or_else(|| s3_client(&S3Settings::default()), |s| s.client.clone());
            let config = PresigningConfig::expires_in(Duration::from_secs(ttl_s))
                .map_err(|e| s3_error("presign")(e.into()))?;
            let request = client
                .get_object()
                .bucket(bucket)
                .key(key)
                .presigned(config)
                .await
                .map_err(|e| s3_error("presign")(e.into()))?;
            return Ok(SignedUrl { url: request.uri().to_owned(), expires_at: expires });
        }
        let sig = hex::encode(self.signature(recording, expires));
        Ok(SignedUrl {
            url: format!("{base}/v1/recordings/{recording}?expires={expires}&sig={sig}"),
            expires_at: expires,
        })
    }

    /// The file a valid, unexpired local link names; `None` for any other link.
    #[must_use]
    pub fn check(&self, key: &str, expires: u64, sig: &str, now_s: u64) -> Option<PathBuf> {
        if expires < now_s || !is_key(key) {
            return None;
        }
        let given = hex::decode(sig).ok()?;
        hmac::verify(&self.key, format!("{key}\n{expires}").as_bytes(), &given).ok()?;
        Some(self.dir.join(key))
    }

    /// Moves a finished call's recording to S3 (when configured), then
    /// points its record there. Retries with backoff (1 s doubling to 5
    /// minutes, for a day) while the local copy keeps serving; removes the
    /// local copy only once S3 has confirmed the object.
    pub fn upload_in_background(self: &std::sync::Arc<Self>, store: Store, call_id: String, file: PathBuf) {
        let Some(s3) = self.s3.clone() else { return };
        tokio::spawn(async move {
            let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let key = format!("{}{name}", s3.prefix);
            let mut wait = Duration::from_secs(1);
            let give_up = tokio::time::Instant::now() + Duration::from_secs(86_400);
            loop {
                match s3.upload(&key, &file).await {
                    Ok(()) => break,
                    Err(e) if tokio::time::Instant::now() + wait < give_up => {
                        tracing::warn!(call_id = %call_id, error = %e, retry_in_s = wait.as_secs(), "recording upload failed; kept locally");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(300));
                    }
                    Err(e) => {
                        tracing::error!(call_id = %call_id, error = %e, "recording upload gave up; it stays local");
                        return;
                    }
                }
            }
            let reference = format!("s3://{}/{key}", s3.bucket);
            match store.set_recording(&call_id, &reference).await {
                Ok(()) => {
                    if let Err(e) = tokio::fs::remove_file(&file).await {
                        tracing::warn!(call_id = %call_id, error = %e, "uploaded recording not removed locally");
                    }
                    tracing::info!(call_id = %call_id, key = %key, "recording uploaded");
                }
                // The object is safe; the record still names the local copy, which stays.
                Err(e) => {
                    tracing::error!(call_id = %call_id, error = %e, "uploaded, but the call record not updated")
                }
            }
        });
    }
}

impl S3 {
    /// Uploads `file` as `key` in parts, and confirms its size.
    async fn upload(&self, key: &str, file: &Path) -> Result<(), RecordingError> {
        use tokio::io::AsyncReadExt as _;
        let local = tokio::fs::metadata(file).await?.len();
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type("audio/wav")
            .send()
            .await
            .map_err(|e| s3_error("create multipart upload")(e.into()))?;
        let upload_id = upload.upload_id().unwrap_or_default().to_owned();
        let parts = async {
            let mut reader = tokio::fs::File::open(file).await?;
            let mut parts = Vec::new();
            let mut number = 1;
            loop {
                let mut chunk = Vec::with_capacity(PART_BYTES);
                (&mut reader).take(PART_BYTES as u64).read_to_end(&mut chunk).await?;
                // An empty file is one empty part; otherwise stop at the end.
                if chunk.is_empty() && number > 1 {
                    break;
                }
                let done = chunk.len() < PART_BYTES;
                let part = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .body(ByteStream::from(chunk))
                    .send()
                    .await
                    .map_err(|e| s3_error("upload part")(e.into()))?;
                parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(part.e_tag().map(str::to_owned))
                        .build(),
                );
                number += 1;
                if done {
                    break;
                }
            }
            Ok::<_, RecordingError>(parts)
        }
        .await;
        let parts = match parts {
            Ok(p) => p,
            Err(e) => {
                // Free what was stored of it; the next attempt starts over.
                let _ = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .send()
                    .await;
                return Err(e);
            }
        };
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(|e| s3_error("complete multipart upload")(e.into()))?;
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| s3_error("head object")(e.into()))?;
        let stored = head.content_length().unwrap_or(-1);
        if u64::try_from(stored).ok() != Some(local) {
            return Err(RecordingError::Mismatch { stored, local });
        }
        Ok(())
    }
}

/// An S3 client for `s3`: static credentials from the settings or the
/// environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`).
fn s3_client(s3: &S3Settings) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    let env = |v: &str| std::env::var(v).unwrap_or_default();
    let (id, secret, token) = if s3.access_key_id.is_empty() {
        (
            env("AWS_ACCESS_KEY_ID"),
            env("AWS_SECRET_ACCESS_KEY"),
            Some(env("AWS_SESSION_TOKEN")).filter(|t| !t.is_empty()),
        )
    } else {
        (s3.access_key_id.clone(), s3.secret_access_key.expose().to_owned(), None)
    };
    let mut config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(s3.region.clone()))
        .credentials_provider(Credentials::new(id, secret, token, None, "voxgate"))
        .force_path_style(s3.path_style);
    if !s3.endpoint.is_empty() {
        config = config.endpoint_url(&s3.endpoint);
    }
    aws_sdk_s3::Client::from_conf(config.build())
}

/// Whether `key` is a recording's file name as [`voxgate_calls::hooks::recording_path`]
/// makes them: no path separators, no way out of the folder.
fn is_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 128
        && key.ends_with(".wav")
        && !key.starts_with('.')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    fn query(url: &str, name: &str) -> String {
        url.split(['?', '&']).find_map(|p| p.strip_prefix(&format!("{name}="))).unwrap_or_default().to_owned()
    }

    #[test]
    fn a_link_opens_its_recording_until_it_expires() {
        let r = Recordings::new("rec".into(), b"k1", &S3Settings::default());
        let link = block_on(r.signed_url("http://h", "call-1.wav", 1000, 60)).unwrap();
        assert_eq!(link.expires_at, 1060);
        let sig = query(&link.url, "sig");
        assert_eq!(r.check("call-1.wav", 1060, &sig, 1060), Some(PathBuf::from("rec/call-1.wav")));
        assert_eq!(r.check("call-1.wav", 1060, &sig, 1061), None, "expired");
        assert_eq!(r.check("call-1.wav", 1061, &sig, 1000), None, "expiry changed");
        assert_eq!(r.check("call-2.wav", 1060, &sig, 1000), None, "another recording");
        let other = Recordings::new("rec".into(), b"k2", &S3Settings::default());
        assert_eq!(other.check("call-1.wav", 1060, &sig, 1000), None, "another server's key");
        assert_eq!(r.check("call-1.wav", 1060, "zz", 1000), None);
    }

    #[test]
    fn keys_cannot_leave_the_folder() {
        for bad in ["../etc/passwd.wav", "a/b.wav", ".hidden.wav", "x.json", "", "%2e%2e.wav"] {
            assert!(!is_key(bad), "{bad}");
        }
        assert!(!is_key("out-0123@voxgate.wav") && is_key("out-0123_voxgate.wav"));
    }
}
