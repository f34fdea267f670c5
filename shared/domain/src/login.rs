//! The login request of SPEC §5.6.

use serde::Deserialize;

use crate::DomainError;

/// The body as clients send it; `operator_id` is Keystone's legacy name for `account`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct LoginBody {
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default)]
    pub operator_id: Option<String>,
    #[serde(default)]
    #[schema(required = true, value_type = String)]
    pub password: Option<String>,
}

/// A login with both parts present.
#[derive(Clone, PartialEq, Eq)]
pub struct LoginRequest {
    pub account: String,
    pub password: String,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

impl LoginRequest {
    /// # Errors
    /// [`DomainError::MissingCredentials`] when the account or the password is absent or empty.
    pub fn validate(body: LoginBody) -> Result<Self, DomainError> {
        let account = body.account.filter(|a| !a.is_empty()).or(body.operator_id);
        match (
            account.filter(|a| !a.is_empty()),
            body.password.filter(|p| !p.is_empty()),
        ) {
            (Some(account), Some(password)) => Ok(Self { account, password }),
            _ => Err(DomainError::MissingCredentials),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<LoginRequest, DomainError> {
        LoginRequest::validate(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn operator_id_is_an_alias_of_account() {
        let request = parse(r#"{"operator_id":"DC001","password":"p"}"#).unwrap();
        assert_eq!(request.account, "DC001");
        let request = parse(r#"{"account":"DC002","operator_id":"DC001","password":"p"}"#).unwrap();
        assert_eq!(request.account, "DC002");
    }

    #[test]
    fn both_parts_are_required() {
        for json in [
            r#"{"password":"p"}"#,
            r#"{"account":"DC001"}"#,
            r#"{"account":"","password":"p"}"#,
            r#"{"account":"a","password":null}"#,
        ] {
            assert_eq!(parse(json), Err(DomainError::MissingCredentials), "{json}");
        }
    }
}
