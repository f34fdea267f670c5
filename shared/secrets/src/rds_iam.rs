//! RDS IAM authentication tokens: a SigV4-presigned `connect` request for the database user,
//! valid 15 minutes, used as the password of new connections (RDS Proxy with
//! `IAMAuth: REQUIRED`). Signed locally with `aws-sigv4`, the piece of the SDK the RDS client's
//! own token generator uses, so the functions do not link the whole RDS SDK.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use keystone_store::PasswordSource;
use secrecy::SecretString;

use crate::SecretsError;

/// How long a token is valid; RDS accepts at most 15 minutes.
const TOKEN_LIFETIME: Duration = Duration::from_secs(900);

/// Signs IAM tokens for one database user at one endpoint.
pub struct RdsIamAuthToken {
    host: String,
    port: u16,
    user: String,
    region: String,
    credentials: SharedCredentialsProvider,
}

impl fmt::Debug for RdsIamAuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RdsIamAuthToken")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl RdsIamAuthToken {
    /// A signer with the SDK configuration's region and credentials (the function's role).
    ///
    /// # Errors
    /// No region or no credentials provider in the configuration.
    pub fn new(
        config: &aws_config::SdkConfig,
        host: &str,
        port: u16,
        user: &str,
    ) -> Result<Self, SecretsError> {
        let region = config
            .region()
            .ok_or_else(|| SecretsError::IamToken("no AWS region configured".to_owned()))?
            .to_string();
        let credentials = config
            .credentials_provider()
            .ok_or_else(|| SecretsError::IamToken("no AWS credentials provider".to_owned()))?;
        Ok(Self::with_credentials(
            host,
            port,
            user,
            &region,
            credentials,
        ))
    }

    /// A signer with explicit region and credentials.
    pub fn with_credentials(
        host: &str,
        port: u16,
        user: &str,
        region: &str,
        credentials: SharedCredentialsProvider,
    ) -> Self {
        Self {
            host: host.to_owned(),
            port,
            user: user.to_owned(),
            region: region.to_owned(),
            credentials,
        }
    }

    /// A token valid from `now` for 15 minutes: `host:port/?Action=connect&DBUser=…&X-Amz-…`.
    ///
    /// # Errors
    /// Credentials that cannot be had, or a request that cannot be signed.
    pub async fn token_at(&self, now: SystemTime) -> Result<SecretString, SecretsError> {
        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| SecretsError::IamToken(e.to_string()))?;
        let identity: Identity = credentials.into();
        let mut settings = SigningSettings::default();
        settings.expires_in = Some(TOKEN_LIFETIME);
        settings.signature_location = SignatureLocation::QueryParams;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("rds-db")
            .time(now)
            .settings(settings)
            .build()
            .map_err(|e| SecretsError::IamToken(e.to_string()))?
            .into();
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("Action", "connect")
            .append_pair("DBUser", &self.user)
            .finish();
        let url = format!("https://{}:{}/?{query}", self.host, self.port);
        let request =
            SignableRequest::new("GET", &url, std::iter::empty(), SignableBody::Bytes(&[]))
                .map_err(|e| SecretsError::IamToken(e.to_string()))?;
        let (instructions, _signature) = sign(request, &params)
            .map_err(|e| SecretsError::IamToken(e.to_string()))?
            .into_parts();
        let mut signed = form_urlencoded::Serializer::new(query);
        for (name, value) in instructions.params() {
            signed.append_pair(name, value);
        }
        Ok(SecretString::from(format!(
            "{}:{}/?{}",
            self.host,
            self.port,
            signed.finish()
        )))
    }
}

impl PasswordSource for RdsIamAuthToken {
    fn password(&self) -> Pin<Box<dyn Future<Output = Result<SecretString, String>> + Send + '_>> {
        Box::pin(async move {
            self.token_at(SystemTime::now())
                .await
                .map_err(|e| e.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;
    use secrecy::ExposeSecret;

    fn signer(session_token: Option<&str>) -> RdsIamAuthToken {
        let credentials = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            session_token.map(str::to_owned),
            None,
            "test",
        );
        RdsIamAuthToken::with_credentials(
            "proxy.proxy-abc.eu-west-1.rds.amazonaws.com",
            5432,
            "keystone_app",
            "eu-west-1",
            SharedCredentialsProvider::new(credentials),
        )
    }

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[tokio::test]
    async fn a_token_is_a_presigned_connect_request_for_the_user() {
        let token = signer(None).token_at(at(1_764_000_000)).await.unwrap();
        let token = token.expose_secret();
        let (endpoint, query) = token.split_once("/?").unwrap();
        assert_eq!(endpoint, "proxy.proxy-abc.eu-west-1.rds.amazonaws.com:5432");
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("Action"), Some("connect"));
        assert_eq!(get("DBUser"), Some("keystone_app"));
        assert_eq!(get("X-Amz-Algorithm"), Some("AWS4-HMAC-SHA256"));
        assert_eq!(
            get("X-Amz-Credential"),
            Some("AKIDEXAMPLE/20251124/eu-west-1/rds-db/aws4_request")
        );
        assert_eq!(get("X-Amz-Date"), Some("20251124T160000Z"));
        assert_eq!(get("X-Amz-Expires"), Some("900"));
        assert_eq!(get("X-Amz-SignedHeaders"), Some("host"));
        assert!(!token.starts_with("https://"));
        // The same token botocore's `generate_db_auth_token` (the AWS CLI's
        // `aws rds generate-db-auth-token`) signs for these credentials at this instant.
        assert_eq!(
            token,
            "proxy.proxy-abc.eu-west-1.rds.amazonaws.com:5432/?Action=connect&DBUser=keystone_app\
             &X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=AKIDEXAMPLE%2F20251124%2Feu-west-1%2Frds-db%2Faws4_request\
             &X-Amz-Date=20251124T160000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host\
             &X-Amz-Signature=633132c3637da1c440eb077886c619d9ac21870010f0ccd88e5332cf869f50bd"
        );
    }

    #[tokio::test]
    async fn tokens_differ_by_time_and_carry_the_session_token_of_a_role() {
        let signer = signer(Some("session/token+with=odd chars"));
        let first = signer.token_at(at(1_764_000_000)).await.unwrap();
        let later = signer.token_at(at(1_764_000_300)).await.unwrap();
        assert_ne!(first.expose_secret(), later.expose_secret());
        let pairs: Vec<(String, String)> =
            form_urlencoded::parse(first.expose_secret().split_once("/?").unwrap().1.as_bytes())
                .into_owned()
                .collect();
        assert!(pairs.contains(&(
            "X-Amz-Security-Token".to_owned(),
            "session/token+with=odd chars".to_owned()
        )));
    }
}
