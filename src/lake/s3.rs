//! Lakes on S3: object_store's S3 client, with credentials from the same
//! aws-config chain the CloudWatch source uses (environment, profiles, SSO,
//! credential_process, IRSA, EKS Pod Identity, instance roles).
//!
//! The endpoint is `AWS_ENDPOINT_URL_S3`, else `--endpoint-url`, else
//! `AWS_ENDPOINT_URL`, else S3's own for the region.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use datafusion::object_store::aws::{AmazonS3Builder, AwsCredential};
use datafusion::object_store::{CredentialProvider, ObjectStore};
use tokio::sync::Mutex;

use super::lake_error;
use crate::error::Result;
use crate::source::cloudwatch::Connection;

/// `s3://bucket/prefix` split: the bucket, and the prefix without slashes
/// at either end.
pub fn split(location: &str) -> Option<(&str, &str)> {
    let rest = location.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    (!bucket.is_empty()).then_some((bucket, prefix.trim_matches('/')))
}

/// How to reach S3: loaded once (the aws-config chain is async), then
/// used to make a store per bucket.
#[derive(Debug, Clone)]
pub struct S3Settings {
    region: String,
    endpoint: Option<String>,
    credentials: Option<Arc<SdkCredentials>>,
}

impl S3Settings {
    pub async fn load(conn: &Connection) -> Self {
        let sdk = conn.sdk_config().await;
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Self {
            region: sdk
                .region()
                .map_or_else(|| "us-east-1".to_string(), |r| r.to_string()),
            endpoint: env("AWS_ENDPOINT_URL_S3")
                .or_else(|| conn.endpoint_url.clone())
                .or_else(|| sdk.endpoint_url().map(str::to_string)),
            credentials: sdk.credentials_provider().map(|provider| {
                Arc::new(SdkCredentials {
                    provider,
                    cached: Mutex::new(None),
                })
            }),
        }
    }

    /// The store of `bucket`.
    pub fn store(&self, bucket: &str) -> datafusion::object_store::Result<Arc<dyn ObjectStore>> {
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(&self.region);
        if let Some(url) = &self.endpoint {
            builder = builder
                .with_allow_http(url.starts_with("http://"))
                .with_endpoint(url);
        }
        if let Some(c) = &self.credentials {
            builder = builder.with_credentials(c.clone());
        }
        Ok(Arc::new(builder.build()?))
    }
}

/// The bucket's store.
pub async fn bucket_store(
    location: &str,
    bucket: &str,
    conn: &Connection,
) -> Result<Arc<dyn ObjectStore>> {
    S3Settings::load(conn)
        .await
        .store(bucket)
        .map_err(|e| lake_error(location, e))
}

/// The aws-config credential chain as object_store's credential provider,
/// each credential kept until five minutes before it expires.
#[derive(Debug)]
pub struct SdkCredentials {
    provider: SharedCredentialsProvider,
    cached: Mutex<Option<(Arc<AwsCredential>, Option<SystemTime>)>>,
}

#[async_trait]
impl CredentialProvider for SdkCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> datafusion::object_store::Result<Arc<AwsCredential>> {
        let mut cached = self.cached.lock().await;
        if let Some((credential, expiry)) = cached.as_ref()
            && expiry.is_none_or(|t| t > SystemTime::now() + Duration::from_secs(300))
        {
            return Ok(credential.clone());
        }
        let c = self.provider.provide_credentials().await.map_err(|e| {
            datafusion::object_store::Error::Generic {
                store: "S3",
                source: Box::new(e),
            }
        })?;
        let credential = Arc::new(AwsCredential {
            key_id: c.access_key_id().to_string(),
            secret_key: c.secret_access_key().to_string(),
            token: c.session_token().map(str::to_string),
        });
        *cached = Some((credential.clone(), c.expiry()));
        Ok(credential)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        assert_eq!(split("s3://b/eks/lake/"), Some(("b", "eks/lake")));
        assert_eq!(split("s3://b"), Some(("b", "")));
        assert_eq!(split("s3:///x"), None);
        assert_eq!(split("/data/lake"), None);
    }
}
