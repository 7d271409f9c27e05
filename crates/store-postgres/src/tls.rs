//! Encrypted connections to the database, as PostgreSQL's own clients (libpq) read
//! `sslmode` and `sslrootcert`, so that a URL an operator already uses means the same
//! here.
//!
//! - `disable`: plain TCP.
//! - `prefer` (the default) and `allow`: encrypted if the server offers it, plain
//!   otherwise; the server's certificate is not checked.
//! - `require`: encrypted, or no connection; the certificate is not checked, unless
//!   `sslrootcert` names the authorities to check it against (as `verify-ca`).
//! - `verify-ca`: encrypted, the certificate signed by a trusted authority.
//! - `verify-full`: that, and issued for the host connected to.
//!
//! Trusted authorities are those in the `sslrootcert` file (PEM), else the Mozilla
//! roots the binary carries. The driver knows neither `sslrootcert` nor the `verify-*`
//! modes: they are taken out of the URL here, and the driver is told `require`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// How a connection is secured: what `sslmode` and `sslrootcert` said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Security {
    pub mode: Mode,
    pub root: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl Mode {
    fn parse(text: &str) -> Option<Mode> {
        Some(match text {
            "disable" => Mode::Disable,
            "allow" | "prefer" => Mode::Prefer,
            "require" => Mode::Require,
            "verify-ca" => Mode::VerifyCa,
            "verify-full" => Mode::VerifyFull,
            _ => return None,
        })
    }

    /// What the driver is told: it encrypts, or tries to, and leaves the checks here.
    fn for_driver(self) -> &'static str {
        match self {
            Mode::Disable => "disable",
            Mode::Prefer => "prefer",
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => "require",
        }
    }
}

/// `url` without `sslmode` and `sslrootcert` (then with the driver's `sslmode`), and
/// what they said; or what is wrong with them.
pub(crate) fn split(url: &str) -> Result<(String, Security), String> {
    let mut security = Security {
        mode: Mode::Prefer,
        root: None,
    };
    let mut take = |key: &str, value: &str| -> Result<bool, String> {
        match key {
            "sslmode" => {
                security.mode = Mode::parse(value).ok_or_else(|| {
                    format!(
                        "sslmode `{value}` is not one of disable, allow, prefer, require, verify-ca, verify-full"
                    )
                })?;
                Ok(true)
            }
            "sslrootcert" => {
                security.root = Some(PathBuf::from(value));
                Ok(true)
            }
            _ => Ok(false),
        }
    };
    let rest = if let Some((base, query)) = url.split_once('?')
        && url.contains("://")
    {
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if !take(key, &percent_decoded(value))? {
                kept.push(pair);
            }
        }
        (base.to_string(), kept.join("&"))
    } else if url.contains("://") {
        (url.to_string(), String::new())
    } else {
        // PostgreSQL's `key=value` form.
        let mut kept = Vec::new();
        for pair in url.split_whitespace() {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if !take(key, value.trim_matches('\''))? {
                kept.push(pair);
            }
        }
        let mode = format!("sslmode={}", security.mode.for_driver());
        kept.push(&mode);
        return Ok((kept.join(" "), security));
    };
    let (base, query) = rest;
    let mode = format!("sslmode={}", security.mode.for_driver());
    let query = if query.is_empty() {
        mode
    } else {
        format!("{query}&{mode}")
    };
    Ok((format!("{base}?{query}"), security))
}

/// `%XX` escapes decoded, as a URL's query carries a path.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(Some(h)), Some(Some(l))) = (
                bytes.get(i + 1).map(|&b| hex(b)),
                bytes.get(i + 2).map(|&b| hex(b)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The connector for `security`: none where it says `disable`.
pub(crate) fn connector(security: &Security) -> Result<Option<MakeRustlsConnect>, String> {
    if security.mode == Mode::Disable {
        return Ok(None);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let check = match (security.mode, &security.root) {
        (Mode::Prefer, _) | (Mode::Require, None) => Check::Encrypt,
        (Mode::Require | Mode::VerifyCa, _) => Check::Authority,
        _ => Check::Host,
    };
    let verifier: Arc<dyn ServerCertVerifier> = match check {
        Check::Encrypt => Arc::new(Unchecked(provider.signature_verification_algorithms)),
        Check::Authority | Check::Host => {
            let roots = roots(security.root.as_deref())?;
            let webpki =
                WebPkiServerVerifier::builder_with_provider(roots.into(), provider.clone())
                    .build()
                    .map_err(|e| format!("the trusted certificates: {e}"))?;
            if check == Check::Host {
                webpki
            } else {
                Arc::new(AnyName(webpki))
            }
        }
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Some(MakeRustlsConnect::new(config)))
}

/// How much of the server's certificate is checked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Nothing: the connection is encrypted, the server not authenticated.
    Encrypt,
    /// Signed by a trusted authority.
    Authority,
    /// That, and issued for the host.
    Host,
}

/// The authorities in `file`, or the Mozilla roots.
fn roots(file: Option<&Path>) -> Result<RootCertStore, String> {
    let Some(file) = file else {
        return Ok(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        });
    };
    let named = |e: &dyn std::fmt::Display| format!("sslrootcert `{}`: {e}", file.display());
    let mut store = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(file).map_err(|e| named(&e))? {
        store
            .add(cert.map_err(|e| named(&e))?)
            .map_err(|e| named(&e))?;
    }
    if store.is_empty() {
        return Err(named(&"no certificate in it (PEM expected)"));
    }
    Ok(store)
}

/// Accepts any certificate: `sslmode=require` without `sslrootcert` encrypts without
/// authenticating the server, as PostgreSQL's own clients do. The handshake's
/// signatures are still checked, so that the session's keys are the certificate's.
#[derive(Debug)]
struct Unchecked(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// `verify-ca`: the certificate's chain is checked, not the name it was issued for.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_sslrootcert_are_taken_out_of_the_url() {
        let (url, s) = split(
            "postgres://u:p@db:5432/cohort?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem",
        )
        .expect("parsed");
        assert_eq!(
            url,
            "postgres://u:p@db:5432/cohort?application_name=x&sslmode=require"
        );
        assert_eq!(s.mode, Mode::VerifyFull);
        assert_eq!(s.root.as_deref(), Some(Path::new("/etc/ca.pem")));

        let (url, s) = split("postgres://db/cohort").expect("parsed");
        assert_eq!(
            (url.as_str(), s.mode),
            ("postgres://db/cohort?sslmode=prefer", Mode::Prefer)
        );

        let (url, s) = split("host=db dbname=cohort sslmode=disable").expect("parsed");
        assert_eq!(
            (url.as_str(), s.mode),
            ("host=db dbname=cohort sslmode=disable", Mode::Disable)
        );

        let e = split("postgres://db/cohort?sslmode=verify").expect_err("refused");
        assert!(e.contains("sslmode `verify`"), "{e}");
    }
}
