//! Baton's published verdict keys, fetched over gRPC: the only thing a minter takes from Baton.

use crate::pb::GetJwksRequest;
use crate::pb::decision_service_client::DecisionServiceClient;
use crate::tls::client::{ClientTlsArgs, ClientTlsError};
use crate::token::{KeyError, KeySet};

/// Why Baton's keys could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum JwksFetchError {
    /// The URL or its TLS settings are not ones a gRPC channel can be opened with.
    #[error("`{url}` is not a usable gRPC endpoint")]
    Endpoint {
        /// Baton's URL as given.
        url: String,
        /// What is wrong with it.
        #[source]
        source: ClientTlsError,
    },
    /// No connection to Baton could be made.
    #[error("cannot connect to Baton at `{url}`")]
    Connect {
        /// Baton's URL as given.
        url: String,
        /// Why the connection failed.
        #[source]
        source: tonic::transport::Error,
    },
    /// Baton answered `GetJwks` with an error status.
    ///
    /// The status is kept as text: `tonic::Status` is large and carries no source worth keeping.
    #[error("Baton refused `GetJwks`: {code:?}: {message}")]
    Rpc {
        /// The gRPC status code.
        code: tonic::Code,
        /// The status message.
        message: String,
    },
    /// The JWKS Baton returned holds no usable key or does not parse.
    #[error("Baton's JWKS is unusable")]
    Keys(#[source] KeyError),
}

/// Fetches the JWKS Baton publishes at `baton_url` (`http://host:port`, or `https://` with
/// `tls`) with `GetJwks`.
pub async fn fetch_jwks(baton_url: &str, tls: &ClientTlsArgs) -> Result<KeySet, JwksFetchError> {
    let endpoint = tls
        .endpoint(baton_url)
        .map_err(|source| JwksFetchError::Endpoint {
            url: baton_url.to_owned(),
            source,
        })?;
    let channel = endpoint
        .connect()
        .await
        .map_err(|source| JwksFetchError::Connect {
            url: baton_url.to_owned(),
            source,
        })?;
    let response = DecisionServiceClient::new(channel)
        .get_jwks(GetJwksRequest {})
        .await
        .map_err(|status| JwksFetchError::Rpc {
            code: status.code(),
            message: status.message().to_owned(),
        })?;
    KeySet::from_jwks_json(&response.into_inner().jwks).map_err(JwksFetchError::Keys)
}
